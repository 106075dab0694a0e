package lavinmq

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// validateURL checks that raw is an AMQP URL this client can dial. Its error
// never contains the URL's password.
func validateURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return fmt.Errorf("%w: empty broker URL", ErrInvalidConfig)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input; never echo it back.
		return fmt.Errorf("%w: malformed broker URL %q", ErrInvalidConfig, redact(raw))
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("%w: broker URL %q: scheme must be amqp or amqps, got %q", ErrInvalidConfig, redact(raw), u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: broker URL %q has no host", ErrInvalidConfig, redact(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: broker URL %q: port must be 1-65535", ErrInvalidConfig, redact(raw))
		}
	}
	if _, err := amqp.ParseURI(raw); err != nil {
		return fmt.Errorf("%w: broker URL %q: %s", ErrInvalidConfig, redact(raw), scrub(err.Error(), raw))
	}
	return nil
}

// redact returns raw with the password of its user info replaced by "xxxxx".
// A string that does not parse as a URL is reduced to what cannot hold a secret.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx@" + raw[i+1:]
			}
			return "xxxxx@" + raw[i+1:]
		}
		return raw
	}
	return u.Redacted()
}

// endpoint is the host:port of a URL, safe for logs and errors.
func endpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}

// vhostOf returns the virtual host that raw names ("/" when it names none), as amqp091-go reads it.
func vhostOf(raw string) string {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return "?"
	}
	return uri.Vhost
}

// scrub removes the password of raw from a message produced by another
// library, should that library have echoed the URL.
func scrub(msg, raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// isTLS reports whether raw (a validated URL) is an amqps:// URL.
func isTLS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "amqps"
}
