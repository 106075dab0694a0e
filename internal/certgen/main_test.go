package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	c, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pool(t *testing.T, dir, name string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", name)
	}
	return p
}

func TestGenerateWritesAVerifiableChain(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir, "localhost", time.Now()); err != nil {
		t.Fatal(err)
	}
	if !complete(dir) {
		t.Fatal("not every file written")
	}
	ca, other := pool(t, dir, "ca.pem"), pool(t, dir, "other-ca.pem")
	server := load(t, dir, "server")
	serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

	if _, err := server.Verify(x509.VerifyOptions{Roots: ca, DNSName: "localhost", KeyUsages: serverAuth}); err != nil {
		t.Fatalf("server certificate for localhost does not verify against ca.pem: %v", err)
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: ca, DNSName: "127.0.0.1", KeyUsages: serverAuth}); err == nil {
		t.Fatal("server certificate verifies for 127.0.0.1; it must name localhost only")
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: other, DNSName: "localhost", KeyUsages: serverAuth}); err == nil ||
		!strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("server certificate against other-ca.pem: %v, want unknown authority", err)
	}
	if _, err := load(t, dir, "client").Verify(x509.VerifyOptions{Roots: ca, KeyUsages: clientAuth}); err != nil {
		t.Fatalf("client certificate does not verify against ca.pem: %v", err)
	}
	if _, err := load(t, dir, "other-client").Verify(x509.VerifyOptions{Roots: ca, KeyUsages: clientAuth}); err == nil {
		t.Fatal("other-client certificate verifies against ca.pem; it must not")
	}
	if fi, err := os.Stat(filepath.Join(dir, "client.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client.key mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
