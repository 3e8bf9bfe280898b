package testenv

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes the kernel kill the child when the test process dies.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
