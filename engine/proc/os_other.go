//go:build !linux

package proc

import "os"

func growPipe(*os.File) {}

func changeTime(os.FileInfo) int64 { return 0 }
