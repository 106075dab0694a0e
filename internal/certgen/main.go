// Command certgen writes the test certificates of a private broker's TLS
// listener, made with crypto/x509 (no openssl needed):
//
//	go run ./internal/certgen -dir .broker/NAME/tls [-host localhost] [-force]
//
// Files (PEM; keys are ECDSA P-256, SEC1 "EC PRIVATE KEY"):
//
//	ca.pem                            the CA the broker trusts and that signed its certificate
//	server.pem, server.key            the broker's certificate: DNS name -host only (no IP address),
//	                                  so a URL host of 127.0.0.1 fails verification on purpose
//	client.pem, client.key            a client certificate signed by ca.pem (mTLS), CN lavinmq-go-client
//	other-ca.pem                      an unrelated CA: trusting it instead of ca.pem must fail
//	other-client.pem, other-client.key a client certificate signed by other-ca.pem: the broker must refuse it
//
// Nothing is written when every file exists already, unless -force is given.
// scripts/broker.sh start runs it when the files are missing.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// files lists every file generate writes.
var files = []string{
	"ca.pem", "server.pem", "server.key", "client.pem", "client.key",
	"other-ca.pem", "other-client.pem", "other-client.key",
}

func main() {
	dir := flag.String("dir", "", "directory to write the certificates to (created if missing)")
	host := flag.String("host", "localhost", "DNS name in the server certificate")
	force := flag.Bool("force", false, "write new certificates even when they exist")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "certgen: -dir is required")
		os.Exit(2)
	}
	if !*force && complete(*dir) {
		return
	}
	if err := generate(*dir, *host, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}

// complete reports whether dir holds every file.
func complete(dir string) bool {
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// issuer is a CA that can sign certificates.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// generate writes every file of the package doc to dir. Certificates are
// valid from an hour before now for ten years.
func generate(dir, host string, now time.Time) error {
	if host == "" {
		return errors.New("empty -host")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := newCA("lavinmq-go test CA", now)
	if err != nil {
		return err
	}
	other, err := newCA("lavinmq-go untrusted CA", now)
	if err != nil {
		return err
	}
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: host},
		DNSNames:    []string{host},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	client := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: "lavinmq-go-client", Organization: []string{"lavinmq-go"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
	}
	if err := writeCert(dir, "ca.pem", ca.der); err != nil {
		return err
	}
	if err := writeCert(dir, "other-ca.pem", other.der); err != nil {
		return err
	}
	for _, leaf := range []struct {
		name string
		tmpl *x509.Certificate
		by   *issuer
	}{
		{"server", server, ca},
		{"client", client(), ca},
		{"other-client", client(), other},
	} {
		if err := issue(dir, leaf.name, leaf.tmpl, leaf.by, now); err != nil {
			return err
		}
	}
	return nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(name string, now time.Time) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"lavinmq-go"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &issuer{cert: cert, key: key, der: der}, nil
}

// issue signs tmpl with by and writes NAME.pem and NAME.key.
func issue(dir, name string, tmpl *x509.Certificate, by *issuer, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tmpl.SerialNumber = sn
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.AddDate(10, 0, 0)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, by.cert, &key.PublicKey, by.key)
	if err != nil {
		return fmt.Errorf("sign %s: %w", name, err)
	}
	if err := writeCert(dir, name+".pem", der); err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(dir, name+".key", "EC PRIVATE KEY", kder, 0o600)
}

func writeCert(dir, name string, der []byte) error {
	return writePEM(dir, name, "CERTIFICATE", der, 0o644)
}

// writePEM writes through a temporary file and a rename, so that a reader
// never sees half a file.
func writePEM(dir, name, typ string, der []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}
