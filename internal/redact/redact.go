// Package redact removes known secret values from text on its way out:
// log records and error messages. It is the last line of defence; code must
// still keep secrets out of messages in the first place.
package redact

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Mask replaces each secret.
const Mask = "[REDACTED]"

// Redactor replaces secret values in strings. It is safe for concurrent use.
type Redactor struct {
	mu  sync.Mutex
	set map[string]bool
	r   atomic.Pointer[strings.Replacer]
}

var userinfoPassword = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/]*)@`)

var kvPassword = regexp.MustCompile(`(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// New returns a redactor for the given secrets. A secret that is a
// connection string also contributes its password component, which drivers
// and servers may echo on its own; URL-escaped forms are covered too.
func New(secrets ...string) *Redactor {
	r := &Redactor{set: map[string]bool{}}
	r.Add(secrets...)
	return r
}

// Add masks more secrets from now on, e.g. those of a reloaded config.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.set
	add := func(s string) {
		if len(s) >= 4 { // shorter values would mask ordinary words
			set[s] = true
			if e := url.QueryEscape(s); e != s {
				set[e] = true
			}
			if e := url.PathEscape(s); e != s {
				set[e] = true
			}
		}
	}
	for _, s := range secrets {
		add(s)
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				add(p)
			}
		}
		// By position too, as libpq reads a URL (the userinfo ends at an @
		// before any /): url.Parse refuses userinfo with " < > \ in it and
		// cuts at # or ?, which drivers and servers may accept and echo.
		if m := userinfoPassword.FindStringSubmatch(s); m != nil {
			add(m[1])
			if p, err := url.PathUnescape(m[1]); err == nil {
				add(p)
			}
		}
		for _, m := range kvPassword.FindAllStringSubmatch(s, -1) {
			add(strings.Trim(m[1], "'"))
		}
	}
	list := make([]string, 0, len(set))
	for s := range set {
		list = append(list, s)
	}
	// Longest first, so a DSN is masked whole before its password is.
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	var pairs []string
	for _, s := range list {
		pairs = append(pairs, s, Mask)
	}
	r.r.Store(strings.NewReplacer(pairs...))
}

// String masks every secret in s: the known ones wherever they appear, and
// any password by its place in a connection string (URL userinfo,
// user:password@tcp(...), password=...), known or not and however short.
func (r *Redactor) String(s string) string {
	if r != nil {
		if rep := r.r.Load(); rep != nil {
			s = rep.Replace(s)
		}
	}
	return Structure(s)
}

// Passwords by their place in a connection string.
var (
	urlPassword   = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s/]*@`)
	mysqlPassword = regexp.MustCompile(`((?:^|[\s"'(])[^\s"'(:/@]+:)[^\s@]*@(tcp|unix)\(`)
	passwordPair  = regexp.MustCompile(`((?:^|[\s?&;,])password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&;,]*)`)
)

// Structure masks the passwords of connection strings in s, found by where
// they stand rather than by value, so a short or unknown password is masked
// too.
func Structure(s string) string {
	if !strings.Contains(s, "@") && !strings.Contains(s, "password") {
		return s
	}
	s = urlPassword.ReplaceAllString(s, "${1}"+Mask+"@")
	s = mysqlPassword.ReplaceAllString(s, "${1}"+Mask+"@${2}(")
	return passwordPair.ReplaceAllStringFunc(s, func(m string) string {
		sub := passwordPair.FindStringSubmatch(m)
		if sub[2] == Mask || sub[2] == "" {
			return m
		}
		return sub[1] + Mask
	})
}

// Handler wraps h so that every message and string-valued attribute is
// masked, errors included.
func (r *Redactor) Handler(h slog.Handler) slog.Handler { return &handler{h: h, r: r} }

type handler struct {
	h slog.Handler
	r *Redactor
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		masked := make([]any, len(attrs))
		for i, g := range attrs {
			masked[i] = h.attr(g)
		}
		return slog.Group(a.Key, masked...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.String(err.Error()))
		}
		return slog.String(a.Key, h.r.String(v.String()))
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = h.attr(a)
	}
	return &handler{h: h.h.WithAttrs(masked), r: h.r}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), r: h.r}
}
