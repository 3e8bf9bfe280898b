package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/sandbox/docker"
)

// The demo's first contact: on a fresh machine it provisions what it needs
// with the scripts the tests use (a Docker engine, the offline image), when
// it may (root, Debian, run from a checkout), and says what to run when not.

// setup runs the provisioning steps of a fresh machine.
type setup struct {
	e    *env
	say  func(step, format string, args ...any)
	repo string // the checkout holding scripts/, or "" when there is none
	why  string // why this machine cannot be provisioned, or ""
}

func (e *env) newSetup(say func(string, string, ...any)) *setup {
	s := &setup{e: e, say: say}
	s.repo, _ = findCheckout()
	switch {
	case os.Geteuid() != 0:
		s.why = "not root"
	case !fileExists("/etc/debian_version"):
		s.why = "not Debian"
	case s.repo == "":
		s.why = "not run from a backproof checkout (scripts/ holds the recipes)"
	}
	return s
}

// dockerEngine connects to the Docker engine, starting one first with
// scripts/dockerd.sh when none answers at the default socket.
func (s *setup) dockerEngine(ctx context.Context) (*docker.Docker, error) {
	err := docker.Ping(ctx)
	if err == nil {
		return s.connect(ctx)
	}
	if host := s.e.getenv("DOCKER_HOST"); host != "" {
		return nil, fmt.Errorf("the demo needs a Docker engine: %w (DOCKER_HOST=%s; start that engine, or unset DOCKER_HOST)", err, host)
	}
	if s.why != "" {
		return nil, fmt.Errorf("the demo needs a Docker engine: %w; it can start one itself only as root on Debian from a checkout (%s): run `sudo scripts/dockerd.sh` there, or install Docker Engine (https://docs.docker.com/engine/install/), then the demo again", err, s.why)
	}
	s.say("docker", "no engine answers at /var/run/docker.sock: installing and starting one with scripts/dockerd.sh (about a minute on a fresh machine)")
	start := time.Now()
	if err := s.run(ctx, "dockerd.sh"); err != nil {
		return nil, fmt.Errorf("the demo needs a Docker engine: scripts/dockerd.sh: %w", err)
	}
	s.say("", "engine ready in %s (log: /var/log/backproof/dockerd.log)", since(start))
	return s.connect(ctx)
}

func (s *setup) connect(ctx context.Context) (*docker.Docker, error) {
	d, err := docker.New(ctx, s.e.log)
	if err != nil {
		return nil, fmt.Errorf("the demo needs a Docker engine: %w", err)
	}
	return d, nil
}

// image returns the image for the source and the sandbox and why: --image,
// the offline image when it is there, postgres:N (N: the newest pg_dump
// here) when it is there or can be pulled, else the offline image, built.
func (s *setup) image(ctx context.Context, d *docker.Docker, flag string) (image, why string, err error) {
	switch {
	case flag != "":
		return flag, "--image or $BACKPROOF_DEMO_IMAGE", nil
	case d.HasImage(ctx, demoOfflineImage):
		return demoOfflineImage, "the offline image from scripts/sandbox-images.sh", nil
	}
	tool, ok := postgres.NewestDump(ctx)
	if !ok {
		return "", "", errors.New("the demo backs up with pg_dump, which is not installed here: install the PostgreSQL client tools (Debian: apt-get install postgresql-client)")
	}
	official := fmt.Sprintf("postgres:%d", tool.Major)
	match := fmt.Sprintf("matches pg_dump %s here", tool.Version)
	if d.HasImage(ctx, official) {
		return official, match, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	pullErr := d.Pull(pctx, official)
	cancel()
	if pullErr == nil {
		return official, match + ", pulled", nil
	}
	if ctx.Err() != nil {
		return "", "", ctx.Err()
	}
	if s.why != "" {
		return "", "", fmt.Errorf("%s could not be pulled (%v) and the demo can build its offline image only as root on Debian from a checkout (%s): run `sudo scripts/sandbox-images.sh postgres` there, or pass --image", official, pullErr, s.why)
	}
	s.say("image", "%s could not be pulled (no registry?): building %s from Debian packages with scripts/sandbox-images.sh (about 2 minutes, once; log: /var/log/backproof/sandbox-images.log)", official, demoOfflineImage)
	start := time.Now()
	if err := s.run(ctx, "sandbox-images.sh", "--log", "/var/log/backproof/sandbox-images.log", "postgres"); err != nil {
		return "", "", fmt.Errorf("build the offline image: scripts/sandbox-images.sh: %w", err)
	}
	s.say("", "built in %s", since(start))
	return demoOfflineImage, "the offline image, built from Debian packages", nil
}

// run runs scripts/NAME from the checkout; its lines go to stdout, indented
// under the step.
func (s *setup) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.repo, "scripts", name)}, args...)...)
	cmd.Dir = s.repo
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.say("", "%s", sc.Text())
		}
		io.Copy(io.Discard, pr) //nolint:errcheck // drain a line too long to scan
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	return err
}

// findCheckout returns the backproof checkout the working directory is in.
func findCheckout() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module github.com/backproof/backproof\n")) &&
			fileExists(filepath.Join(dir, "scripts", "dockerd.sh")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no backproof checkout here")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
