package sandbox

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
)

// WriteTar writes files as a tar archive, each read from its HostPath as it
// is written and named name(f) in the archive (mode 0600 unless set).
func WriteTar(w io.Writer, files []File, name func(File) string) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := addFile(tw, f, name(f)); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, f File, name string) error {
	src, err := os.Open(f.HostPath)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	mode := f.Mode
	if mode == 0 {
		mode = 0o600
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(), Mode: mode, ModTime: fi.ModTime()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("%s: %w", f.HostPath, err)
	}
	return nil
}
