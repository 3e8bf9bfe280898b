package rdb

import (
	"errors"
	"fmt"
)

var errLZF = errors.New("invalid LZF data")

// maxLZFRatio bounds how much LZF can expand: its longest back reference
// takes 3 bytes and yields 264.
const maxLZFRatio = 88

// lzfDecompress expands LZF data (the compression Redis uses for strings
// in RDB files) that decompresses to exactly n bytes. A length LZF cannot
// reach from len(in) bytes is refused before anything is allocated.
func lzfDecompress(in []byte, n int) ([]byte, error) {
	if n > len(in)*maxLZFRatio {
		return nil, fmt.Errorf("%d bytes cannot expand to %d: %w", len(in), n, errLZF)
	}
	out := make([]byte, 0, n)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 { // a literal run of ctrl+1 bytes
			run := ctrl + 1
			if i+run > len(in) || len(out)+run > n {
				return nil, errLZF
			}
			out = append(out, in[i:i+run]...)
			i += run
			continue
		}
		// A back reference: length and distance into what is decoded.
		length := ctrl >> 5
		if length == 7 {
			if i >= len(in) {
				return nil, errLZF
			}
			length += int(in[i])
			i++
		}
		if i >= len(in) {
			return nil, errLZF
		}
		ref := len(out) - (ctrl&0x1f)<<8 - int(in[i]) - 1
		i++
		length += 2
		if ref < 0 || len(out)+length > n {
			return nil, errLZF
		}
		for k := range length { // byte by byte: the source may overlap the end
			out = append(out, out[ref+k])
		}
	}
	if len(out) != n {
		return nil, errLZF
	}
	return out, nil
}
