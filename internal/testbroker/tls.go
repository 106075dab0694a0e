package testbroker

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// Environment variables for the TLS listener of the local broker, set by
// `make test` from scripts/broker.sh tls-url and tls-dir.
const (
	EnvTLSURL = "LAVINMQ_TEST_TLS_URL" // amqps://guest:guest@localhost:PORT/
	EnvTLSDir = "LAVINMQ_TEST_TLS_DIR" // folder with ca.pem, client.pem/.key, other-ca.pem, other-client.pem/.key
)

// TLSURL returns the broker's amqps URL or fails the test.
func TLSURL(t testing.TB) string {
	t.Helper()
	return mustEnv(t, EnvTLSURL, "tls-url")
}

// TLSFile returns the path of a file made by internal/certgen (ca.pem,
// client.pem, client.key, other-ca.pem, ...) or fails the test.
func TLSFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(mustEnv(t, EnvTLSDir, "tls-dir"), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("TLS test file: %v (scripts/broker.sh start makes them)", err)
	}
	return p
}

// TLSConfig returns a client TLS configuration that trusts the CA in caFile
// (a name for TLSFile) and, when client is not "", presents the certificate
// client+".pem" with its key client+".key".
func TLSConfig(t testing.TB, caFile, client string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(TLSFile(t, caFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != "" {
		kp, err := tls.LoadX509KeyPair(TLSFile(t, client+".pem"), TLSFile(t, client+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg
}

func mustEnv(t testing.TB, name, cmd string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: TLS tests need the local broker's TLS listener; run `make test` (it sets it) "+
			"or `scripts/broker.sh start` and export %s=$(scripts/broker.sh %s)", name, name, cmd)
	}
	return v
}
