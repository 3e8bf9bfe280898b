package mysql

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
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/backproof/backproof/engine"
)

// DefaultPort is the port a DSN without one means.
const DefaultPort = 3306

// dsn is a parsed mysql:// URL: mysql://user:password@host:3306/db?tls=true.
type dsn struct {
	user, password string
	host           string
	port           int
	db             string // "": every user database
	tls            string // "", true, false, skip-verify, preferred
	ca             string // PEM file of the CA that signs the server's certificate
}

// parseDSN parses a mysql:// (or mariadb://) URL. Errors never quote the
// URL, which holds the password.
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
		return nil, errors.New("dsn: not a valid URL (want mysql://user:password@host:3306/db)")
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		if !strings.HasPrefix(strings.ToLower(s), u.Scheme+"://") {
			// "user:password@tcp(host)/db" without a scheme: the "scheme"
			// read is the user, or the password.
			return nil, errors.New("dsn: no scheme (want mysql://user:password@host:3306/db)")
		}
		return nil, fmt.Errorf("dsn: scheme %q, want mysql:// (mysql://user:password@host:3306/db)", u.Scheme)
	}
	d := &dsn{host: u.Hostname(), port: DefaultPort}
	if d.host == "" {
		return nil, errors.New("dsn: no host (want mysql://user:password@host:3306/db)")
	}
	if p := u.Port(); p != "" {
		if d.port, err = strconv.Atoi(p); err != nil || d.port <= 0 || d.port > 65535 {
			return nil, fmt.Errorf("dsn: invalid port %q", p)
		}
	}
	if u.User != nil {
		d.user = u.User.Username()
		d.password, _ = u.User.Password()
	}
	if d.user == "" {
		return nil, errors.New("dsn: no user (want mysql://user:password@host:3306/db)")
	}
	d.db = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(d.db, "/") {
		return nil, fmt.Errorf("dsn: database %q: one database name, or none for every user database", d.db)
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "tls":
			switch strings.ToLower(v) {
			case "true", "false", "skip-verify", "preferred":
				d.tls = strings.ToLower(v)
			default:
				return nil, fmt.Errorf("dsn: tls=%q, want true, false, skip-verify or preferred", v)
			}
		case "ca":
			d.ca = v
		default:
			return nil, fmt.Errorf("dsn: unknown parameter %q (known: tls, ca)", k)
		}
	}
	return d, nil
}

// describe names the server and database without credentials.
func (d *dsn) describe() string {
	s := net.JoinHostPort(d.host, strconv.Itoa(d.port))
	if d.db != "" {
		s += "/" + d.db
	}
	return s
}

// config is the driver's configuration for d, connected to db ("" for
// none).
func (d *dsn) config(db string) (*driver.Config, error) {
	cfg := driver.NewConfig()
	cfg.User = d.user
	cfg.Passwd = d.password
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(d.host, strconv.Itoa(d.port))
	cfg.DBName = db
	cfg.Timeout = 15 * time.Second
	cfg.Logger = &driver.NopLogger{}
	// Values are read as the server's text (no time.Time parsing), the
	// zone fixed so TIMESTAMPs read and load alike.
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	if err := cfg.Apply(driver.Charset("utf8mb4", "")); err != nil {
		return nil, err
	}
	switch {
	case d.ca != "":
		pem, err := os.ReadFile(d.ca)
		if err != nil {
			return nil, fmt.Errorf("dsn: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dsn: ca: no PEM certificate in %s", d.ca)
		}
		cfg.TLS = &tls.Config{RootCAs: pool, ServerName: d.host, MinVersion: tls.VersionTLS12}
		if d.tls == "skip-verify" {
			cfg.TLS.InsecureSkipVerify = true
		}
	case d.tls != "":
		cfg.TLSConfig = d.tls
	}
	return cfg, nil
}

// URL is a mysql:// URL for the given server; it holds the password.
func URL(host string, port int, user, password, db string) string {
	u := url.URL{Scheme: "mysql", Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/" + db}
	u.User = url.UserPassword(user, password)
	return u.String()
}
