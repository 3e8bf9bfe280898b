// Command entrypoint is the entrypoint of backproof-sandbox/ferretdb, a
// stand-in for the official mongo image where no registry is reachable:
// an image FROM scratch holding this program and a static FerretDB (SQLite
// backend, MongoDB wire protocol), built by scripts/sandbox-images.sh. It
// keeps the official image's contract as far as backproof relies on it:
//
//   - MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD create that
//     user in admin and turn authentication on (SCRAM); neither: no
//     authentication, as with the official image;
//   - the server listens on 27017 and, once it accepts connections, mongod's
//     "Waiting for connections" line is logged.
//
// "entrypoint relay PORT" copies between its stdin and stdout and
// 127.0.0.1:PORT: the image has no bash for backproof's sandbox relay, so its
// io.backproof.relay label names this instead.
//
// Arguments go to ferretdb. FerretDB implements a subset of MongoDB (no
// Decimal128, views, validators, collations or nested arrays in 1.24).
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const ferretdb = "/ferretdb"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "relay" {
		if err := relay(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		return
	}
	env, err := ferretEnv(os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	for _, dir := range []string{"/data/db", "/data/state"} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
	}
	cmd := exec.Command(ferretdb, os.Args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	exited := make(chan struct{})
	go announce(listenPort(env), exited)
	err = cmd.Wait()
	close(exited)
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// ferretEnv turns the official image's variables into FerretDB's. The
// password reaches FerretDB through its environment, never its argv.
func ferretEnv(environ []string) ([]string, error) {
	var user, pass string
	var env []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "MONGO_INITDB_ROOT_USERNAME":
			user = v
		case "MONGO_INITDB_ROOT_PASSWORD":
			pass = v
		default:
			env = append(env, kv)
		}
	}
	switch {
	case user != "" && pass != "":
		env = append(env,
			"FERRETDB_TEST_ENABLE_NEW_AUTH=true",
			"FERRETDB_SETUP_DATABASE=admin",
			"FERRETDB_SETUP_USERNAME="+user,
			"FERRETDB_SETUP_PASSWORD="+pass)
	case user != "" || pass != "":
		return nil, fmt.Errorf("set both MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD, or neither")
	}
	return env, nil
}

// listenPort is the port of FERRETDB_LISTEN_ADDR (the image sets :27017).
func listenPort(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "FERRETDB_LISTEN_ADDR="); ok {
			if _, port, err := net.SplitHostPort(v); err == nil {
				return port
			}
		}
	}
	return "27017"
}

// announce logs mongod's ready line once the server accepts connections.
func announce(port string, exited <-chan struct{}) {
	for {
		select {
		case <-exited:
			return
		case <-time.After(50 * time.Millisecond):
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if err != nil {
			continue
		}
		c.Close()
		fmt.Printf(`{"t":{"$date":%q},"s":"I","c":"NETWORK","id":23016,"ctx":"listener","msg":"Waiting for connections","attr":{"port":%s,"ssl":"off"}}`+"\n",
			time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), port)
		return
	}
}

// relay copies stdin to the server at 127.0.0.1:port and the server's answers
// to stdout, until the server closes.
func relay(port string) error {
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		io.Copy(c, os.Stdin) //nolint:errcheck // ends with either side
		c.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(os.Stdout, c)
	return err
}
