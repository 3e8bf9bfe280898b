package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MinIOBin returns the path of the MinIO server binary (built and cached by
// scripts/testenv.sh).
func MinIOBin(t testing.TB) string {
	t.Helper()
	bin := Require(t, EnvMinIOBin)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		Unavailable(t, "%s=%s is not an executable file", EnvMinIOBin, bin)
	}
	return bin
}

// StartMinIO starts a private MinIO server on a free 127.0.0.1 port with its
// own data directory and random root credentials, and waits until it serves
// S3 requests. stop kills it (SIGKILL, like a crash) and waits for it to
// exit; it may be called any number of times and also runs when the test
// ends. Use it for tests that must kill the server mid-run; otherwise use S3.
func StartMinIO(t testing.TB) (env S3Env, stop func()) {
	t.Helper()
	bin := MinIOBin(t)
	dir := t.TempDir()
	env = S3Env{AccessKey: "bp" + randHex(8), SecretKey: randHex(16), Region: "us-east-1", private: true}

	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ { // a free port can be taken between probe and bind
		addr, console := FreeAddr(t), FreeAddr(t)
		logPath := filepath.Join(dir, "minio-"+strconv.Itoa(attempt)+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		cmd := exec.Command(bin, "server", filepath.Join(dir, "data"),
			"--address", addr, "--console-address", console,
			"--certs-dir", filepath.Join(dir, "certs"), "--quiet")
		cmd.Env = append(envWithout("MINIO_"),
			"MINIO_ROOT_USER="+env.AccessKey, "MINIO_ROOT_PASSWORD="+env.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		setChildAttrs(cmd) // dies with the test binary, so no orphan holds a port or a pipe
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("testenv: start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()

		var once sync.Once
		stop = func() {
			once.Do(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
		}
		t.Cleanup(stop) // registered after TempDir: runs before dir removal

		env.Endpoint = "http://" + addr
		lastErr = waitMinIO(env.Endpoint, exited, 60*time.Second)
		if lastErr == nil {
			return env, stop
		}
		stop()
		log, _ := os.ReadFile(logPath)
		lastErr = fmt.Errorf("%w\n--- %s ---\n%s", lastErr, logPath, tail(string(log), 30))
		if !strings.Contains(string(log), "already in use") {
			break
		}
	}
	t.Fatalf("testenv: private MinIO did not start: %v", lastErr)
	return S3Env{}, nil
}

// waitMinIO polls MinIO's readiness endpoint until it answers 200.
func waitMinIO(endpoint string, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-exited:
			return errors.New("minio exited during startup")
		case <-ctx.Done():
			return fmt.Errorf("minio at %s not ready after %s", endpoint, timeout)
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get(endpoint + "/minio/health/ready")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
}

// FreeAddr returns 127.0.0.1:PORT for a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// envWithout returns os.Environ() minus variables starting with prefix.
func envWithout(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
