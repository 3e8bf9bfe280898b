package main

import (
	"slices"
	"testing"
)

func TestFerretEnv(t *testing.T) {
	env, err := ferretEnv([]string{"PATH=/", "MONGO_INITDB_ROOT_USERNAME=root", "MONGO_INITDB_ROOT_PASSWORD=s3cr=t"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/", "FERRETDB_TEST_ENABLE_NEW_AUTH=true", "FERRETDB_SETUP_DATABASE=admin",
		"FERRETDB_SETUP_USERNAME=root", "FERRETDB_SETUP_PASSWORD=s3cr=t"}
	if !slices.Equal(env, want) {
		t.Errorf("got %q, want %q", env, want)
	}

	env, err = ferretEnv([]string{"PATH=/"})
	if err != nil || !slices.Equal(env, []string{"PATH=/"}) {
		t.Errorf("no credentials: %q %v", env, err)
	}
	if _, err := ferretEnv([]string{"MONGO_INITDB_ROOT_USERNAME=root"}); err == nil {
		t.Error("a user without a password is accepted")
	}
	if p := listenPort([]string{"FERRETDB_LISTEN_ADDR=:27017"}); p != "27017" {
		t.Errorf("port %s", p)
	}
	if p := listenPort([]string{"FERRETDB_LISTEN_ADDR=0.0.0.0:1234"}); p != "1234" {
		t.Errorf("port %s", p)
	}
}
