package redis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/backproof/backproof/engine"
)

// dsn is a parsed redis:// or rediss:// URL:
//
//	redis://[[user]:password@]host[:port][/db][?cacert=FILE]
//
// rediss:// connects with TLS, verifying the server against the system's
// roots or the PEM bundle named by cacert. The db number only matters to
// user checks; a backup always holds every database.
type dsn struct {
	tls      bool
	host     string
	port     string
	user     string
	password string
	db       int
	caFile   string
}

const defaultPort = "6379"

// parseDSN parses s. Its errors never quote s: it may hold a password.
func parseDSN(s string) (*dsn, error) {
	d, err := parseURL(s)
	if err != nil {
		// A parameter or value quoted may be the password itself.
		return nil, errors.New(engine.RedactPassword(err.Error(), s))
	}
	return d, nil
}

func parseURL(s string) (*dsn, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("invalid redis DSN: not a URL (want redis://[user:password@]host[:port])")
	}
	d := &dsn{host: u.Hostname(), port: u.Port()}
	switch u.Scheme {
	case "redis":
	case "rediss":
		d.tls = true
	default:
		if !strings.HasPrefix(strings.ToLower(s), u.Scheme+"://") {
			// "user:password@host" without a scheme: the "scheme" read
			// is the user, or the password.
			return nil, errors.New("invalid redis DSN: no scheme (want redis://[user:password@]host[:port])")
		}
		return nil, fmt.Errorf("invalid redis DSN: scheme %q, want redis or rediss", u.Scheme)
	}
	if d.host == "" {
		return nil, errors.New("invalid redis DSN: no host")
	}
	if d.port == "" {
		d.port = defaultPort
	}
	if u.User != nil {
		d.user = u.User.Username()
		d.password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if d.db, err = strconv.Atoi(p); err != nil || d.db < 0 {
			return nil, fmt.Errorf("invalid redis DSN: database %q is not a number", p)
		}
	}
	for k, v := range u.Query() {
		switch k {
		case "cacert":
			d.caFile = v[0]
		default:
			return nil, fmt.Errorf("invalid redis DSN: unknown parameter %q (known: cacert)", k)
		}
	}
	if d.caFile != "" && !d.tls {
		return nil, errors.New("invalid redis DSN: cacert needs rediss://")
	}
	return d, nil
}

func (d *dsn) addr() string { return net.JoinHostPort(d.host, d.port) }

// String names the server without credentials.
func (d *dsn) String() string {
	scheme := "redis"
	if d.tls {
		scheme = "rediss"
	}
	return scheme + "://" + d.addr()
}

func (d *dsn) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: d.host, MinVersion: tls.VersionTLS12}
	if d.caFile != "" {
		pem, err := os.ReadFile(d.caFile)
		if err != nil {
			return nil, fmt.Errorf("redis DSN cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis DSN cacert %s: no PEM certificates", d.caFile)
		}
	}
	return cfg, nil
}

// Describe names the server a DSN points at, without its credentials.
func Describe(s string) string {
	d, err := parseDSN(s)
	if err != nil {
		return "the given Redis server"
	}
	return d.String()
}
