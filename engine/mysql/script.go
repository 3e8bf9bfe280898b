package mysql

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// errTruncated: the script ended without the dump's end marker.
var errTruncated = errors.New("the dump ends early (no end marker): it is truncated")

// statement is one statement of a dump script, or a marker comment.
type statement struct {
	sql    string
	marker string // a "-- backproof: ..." line, when the item is one
	line   int    // where it starts
}

// scriptReader splits SQL text into statements the way the mysql client
// does: string literals, quoted identifiers and comments are opaque, and
// DELIMITER lines change the terminator.
type scriptReader struct {
	r      *bufio.Reader
	delim  string
	line   int
	ended  bool // saw the end marker
	lastNL bool // the last command line ended with a newline
}

func newScriptReader(r io.Reader) *scriptReader {
	return &scriptReader{r: bufio.NewReaderSize(r, 256<<10), delim: ";", line: 1}
}

// Next returns the next statement, or io.EOF after the last one. A script
// that ends without the end marker is errTruncated.
func (s *scriptReader) Next() (statement, error) {
	var b bytes.Buffer
	start := 0
	for {
		// Between statements: skip blank space, read line comments and
		// DELIMITER commands.
		if b.Len() == 0 {
			c, err := s.r.ReadByte()
			if err == io.EOF {
				if !s.ended {
					return statement{}, errTruncated
				}
				return statement{}, io.EOF
			}
			if err != nil {
				return statement{}, err
			}
			switch c {
			case '\n':
				s.line++
				continue
			case ' ', '\t', '\r':
				continue
			}
			s.r.UnreadByte() //nolint:errcheck // just read
			start = s.line
			if c == '-' || c == '#' || c == 'D' || c == 'd' {
				line, isCmd, err := s.peekCommand()
				if err != nil {
					return statement{}, err
				}
				if isCmd {
					if m, ok := strings.CutPrefix(line, "-- backproof:"); ok {
						// The end marker counts with its newline: a cut
						// last byte is a truncated dump too.
						if strings.TrimSpace(m) == strings.TrimPrefix(markerEnd, "-- backproof: ") && s.lastNL {
							s.ended = true
						}
						return statement{marker: line, line: start}, nil
					}
					continue
				}
			}
		}
		if err := s.readUntilDelim(&b); err != nil {
			if err == io.EOF {
				return statement{}, errTruncated
			}
			return statement{}, err
		}
		sql := strings.TrimSpace(b.String())
		if sql == "" {
			b.Reset()
			continue
		}
		return statement{sql: sql, line: start}, nil
	}
}

// peekCommand handles a line that starts a statement with "--", "#" or
// "DELIMITER": a comment or delimiter change is consumed and reported as
// a command (with the line); anything else is left unread.
func (s *scriptReader) peekCommand() (string, bool, error) {
	head, _ := s.r.Peek(10)
	h := string(head)
	isComment := strings.HasPrefix(h, "#") || strings.HasPrefix(h, "--") && (len(h) == 2 || h[2] == ' ' || h[2] == '\t' || h[2] == '\n' || h[2] == '\r')
	isDelim := len(h) >= 10 && strings.EqualFold(h[:9], "DELIMITER") && (h[9] == ' ' || h[9] == '\t')
	if !isComment && !isDelim {
		return "", false, nil
	}
	line, err := s.r.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", false, err
	}
	s.lastNL = strings.HasSuffix(line, "\n")
	if s.lastNL {
		s.line++
	}
	line = strings.TrimRight(line, "\r\n")
	if isDelim {
		d := strings.TrimSpace(line[len("DELIMITER"):])
		if d == "" {
			return "", false, fmt.Errorf("line %d: DELIMITER without a delimiter", s.line-1)
		}
		s.delim = d
	}
	return line, true, nil
}

// readUntilDelim appends one statement's text to b and consumes its
// delimiter.
func (s *scriptReader) readUntilDelim(b *bytes.Buffer) error {
	var quote byte // inside '...', "..." or `...`
	comment := 0   // 1: line comment, 2: block comment
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return err
		}
		if c == '\n' {
			s.line++
		}
		switch {
		case comment == 1:
			b.WriteByte(c)
			if c == '\n' {
				comment = 0
			}
			continue
		case comment == 2:
			b.WriteByte(c)
			if c == '*' {
				if n, _ := s.r.Peek(1); len(n) == 1 && n[0] == '/' {
					s.r.ReadByte() //nolint:errcheck // peeked
					b.WriteByte('/')
					comment = 0
				}
			}
			continue
		case quote != 0:
			b.WriteByte(c)
			if c == '\\' && quote != '`' {
				n, err := s.r.ReadByte()
				if err != nil {
					return err
				}
				if n == '\n' {
					s.line++
				}
				b.WriteByte(n)
			} else if c == quote {
				quote = 0 // a doubled quote reopens at once
			}
			continue
		}
		switch c {
		case '\'', '"', '`':
			quote = c
		case '#':
			comment = 1
		case '-':
			if n, _ := s.r.Peek(2); len(n) == 2 && n[0] == '-' && (n[1] == ' ' || n[1] == '\t' || n[1] == '\n') {
				comment = 1
			}
		case '/':
			if n, _ := s.r.Peek(1); len(n) == 1 && n[0] == '*' {
				comment = 2
				s.r.ReadByte() //nolint:errcheck // peeked
				b.WriteString("/*")
				continue
			}
		}
		if c == s.delim[0] {
			if len(s.delim) == 1 {
				return nil
			}
			if n, _ := s.r.Peek(len(s.delim) - 1); string(n) == s.delim[1:] {
				s.r.Discard(len(n)) //nolint:errcheck // peeked
				return nil
			}
		}
		b.WriteByte(c)
	}
}
