package docker

// Unit tests without Docker: which labelled containers a sweep removes.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// deadPID is above any pid_max in use (the kernel's limit is 4194304).
const deadPID = 4194303

func requireProc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", deadPID)); err == nil {
		t.Fatalf("pid %d exists", deadPID)
	}
}

func TestLeftover(t *testing.T) {
	requireProc(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	past := strconv.FormatInt(now.Unix()-1, 10)
	future := strconv.FormatInt(now.Unix()+3600, 10)
	self := Owner()
	ticks := startTicks(os.Getpid())
	otherTicks := "1"
	if ticks == otherTicks {
		otherTicks = "2"
	}

	tests := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"past deadline, live owner", map[string]string{LabelOwner: self, LabelDeadline: past}, "past its deadline"},
		{"past deadline, other host", map[string]string{LabelOwner: "other-host/1/1", LabelDeadline: past}, "past its deadline"},
		{"deadline is now", map[string]string{LabelOwner: self, LabelDeadline: strconv.FormatInt(now.Unix(), 10)}, ""},
		{"no owner label", map[string]string{LabelDeadline: future}, "no owner label"},
		{"malformed owner label", map[string]string{LabelOwner: host + "/x/1", LabelDeadline: future}, "no owner label"},
		{"no labels at all", map[string]string{}, "no owner label"},
		{"other host, future deadline", map[string]string{LabelOwner: "other-host/1/1", LabelDeadline: future}, ""},
		{"other host, no deadline", map[string]string{LabelOwner: "other-host/1/1"}, ""},
		{"this host, dead pid", map[string]string{LabelOwner: fmt.Sprintf("%s/%d/12345", host, deadPID), LabelDeadline: future}, "its owner process is gone"},
		{"this host, dead pid, no deadline", map[string]string{LabelOwner: fmt.Sprintf("%s/%d/12345", host, deadPID)}, "its owner process is gone"},
		{"this host, live pid, same start", map[string]string{LabelOwner: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), ticks), LabelDeadline: future}, ""},
		{"this host, live pid, no deadline", map[string]string{LabelOwner: self}, ""},
		{"this host, live pid, unparsable deadline", map[string]string{LabelOwner: self, LabelDeadline: "soon"}, ""},
		{"this host, pid reused by another process", map[string]string{LabelOwner: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), otherTicks), LabelDeadline: future}, "its owner process is gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leftover(tt.labels, now); got != tt.want {
				t.Errorf("leftover(%v) = %q, want %q", tt.labels, got, tt.want)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	requireProc(t)
	host, _ := os.Hostname()
	want := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), startTicks(os.Getpid()))
	if got := Owner(); got != want {
		t.Errorf("Owner() = %q, want %q", got, want)
	}
	h, pid, ok := parseOwner(Owner())
	if !ok || h != host || pid != os.Getpid() {
		t.Errorf("parseOwner(Owner()) = %q, %d, %v", h, pid, ok)
	}
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPID  int
		wantOK   bool
	}{
		{"host/12/345", "host", 12, true},
		{"host/12/", "host", 12, true}, // no /proc where it was written
		{"host/12/gone", "host", 12, true},
		{"host.example.com/4194303/1", "host.example.com", 4194303, true},
		{"", "", 0, false},
		{"host", "", 0, false},
		{"host/12", "", 0, false},
		{"host/x/345", "", 0, false},
		{"host/12/345/6", "", 0, false},
	}
	for _, tt := range tests {
		host, pid, ok := parseOwner(tt.in)
		if host != tt.wantHost || pid != tt.wantPID || ok != tt.wantOK {
			t.Errorf("parseOwner(%q) = %q, %d, %v; want %q, %d, %v", tt.in, host, pid, ok, tt.wantHost, tt.wantPID, tt.wantOK)
		}
	}
}

func TestStartTicks(t *testing.T) {
	requireProc(t)
	self := startTicks(os.Getpid())
	selfN, err := strconv.ParseUint(self, 10, 64)
	if err != nil {
		t.Fatalf("startTicks(self) = %q, want a number", self)
	}
	if again := startTicks(os.Getpid()); again != self {
		t.Errorf("startTicks(self) changed from %q to %q", self, again)
	}
	if got := startTicks(deadPID); got != "gone" {
		t.Errorf("startTicks(%d) = %q, want gone", deadPID, got)
	}

	// A process whose command name holds spaces and parentheses, which
	// /proc/PID/stat prints unquoted in field 2.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program")
	}
	odd := filepath.Join(t.TempDir(), "a) b (c d")
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(odd, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	t.Logf("/proc/%d/stat: %s", cmd.Process.Pid, stat)
	child := startTicks(cmd.Process.Pid)
	childN, err := strconv.ParseUint(child, 10, 64)
	if err != nil {
		t.Fatalf("startTicks(child named %q) = %q, want a number", filepath.Base(odd), child)
	}
	// Started after this process, and a few seconds of uptime are at most
	// some thousands of ticks apart.
	if childN < selfN || childN > selfN+uint64(time.Hour/time.Millisecond) {
		t.Errorf("startTicks(child) = %d, startTicks(self) = %d: the child started after this process, within the hour", childN, selfN)
	}
}
