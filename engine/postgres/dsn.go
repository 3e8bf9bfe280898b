package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// splitPassword removes the password from a libpq connection string (URL or
// keyword/value form) so the rest can go on a child's argv while the password
// travels in its environment only.
func splitPassword(dsn string) (rest, password string, err error) {
	if scheme, p, ok := strings.Cut(dsn, "://"); ok && (scheme == "postgres" || scheme == "postgresql") {
		return splitURI(scheme, p)
	}
	pairs, err := parseKeywords(dsn)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	for _, kv := range pairs {
		if kv[0] == "password" {
			password = kv[1]
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(quoteValue(kv[1]))
	}
	return b.String(), password, nil
}

// splitURI splits the password out of the URI scheme://p as libpq (and
// pgx) read it, not as net/url would: the userinfo ends at the first '@'
// before any '/', so a password may hold '#', '?' or '@'-free text that
// net/url takes for a fragment or a query. A password=... query parameter
// wins, as in libpq. Only %XX escapes are decoded ('+' stays '+').
func splitURI(scheme, p string) (rest, password string, err error) {
	// Errors never quote: the text may be the password.
	decode := func(s string) (string, error) {
		s = strings.Trim(s, " ") // libpq drops spaces around a component
		if strings.Contains(s, " ") {
			return "", errors.New("dsn: a space inside a postgres URL component (write %20)")
		}
		v, err := url.PathUnescape(s)
		if err != nil || strings.Contains(v, "\x00") {
			return "", errors.New("dsn: invalid %-escape in the postgres URL")
		}
		return v, nil
	}
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		user, pass, _ := strings.Cut(p[:i], ":")
		if password, err = decode(pass); err != nil {
			return "", "", err
		}
		p = user + "@" + p[i+1:] // the @ stays: what follows is never read as userinfo
	}
	base, query, hasQuery := strings.Cut(p, "?")
	if !hasQuery {
		return scheme + "://" + base, password, nil
	}
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if key, err := decode(k); err == nil && key == "password" {
			if password, err = decode(v); err != nil {
				return "", "", err
			}
			continue
		}
		kept = append(kept, kv)
	}
	if len(kept) == 0 {
		return scheme + "://" + base, password, nil
	}
	return scheme + "://" + base + "?" + strings.Join(kept, "&"), password, nil
}

// parseKeywords parses "key=value key2='quoted \' value'" as libpq does.
func parseKeywords(s string) ([][2]string, error) {
	var pairs [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("dsn: expected key=value near %s (want postgres://... or key=value pairs)", keyword(key, start))
		}
		i++
		skipSpace()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '\'' {
					i++
					closed = true
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("dsn: unterminated quoted value for %s", keyword(key, start))
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		pairs = append(pairs, [2]string{key, val.String()})
	}
}

// isSpace is C's isspace, which libpq uses between keyword=value pairs.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// keyword quotes key for an error when it looks like a libpq keyword; any
// other text (a DSN of another form, with a password in it) is only
// located.
func keyword(key string, at int) string {
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Sprintf("byte %d", at)
		}
	}
	return fmt.Sprintf("keyword %q", key)
}

func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\v\f'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
