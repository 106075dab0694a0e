package lavinmq_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// A service that must not start with a wrong password, vhost or certificate:
// WithFailFast ends WaitConnected at once on those, while a broker that is
// merely down is still waited for until ctx ends.
func ExampleWithFailFast() {
	c, err := lavinmq.New("amqps://orders:secret@rabbit.internal:5671/orders", lavinmq.WithFailFast())
	if err != nil {
		log.Fatal(err) // bad URL or option
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch err := c.WaitConnected(ctx); {
	case errors.Is(err, lavinmq.ErrPermanent):
		log.Fatalf("will not connect: %v", err) // e.g. ... Exception (403) Reason: "username or password not allowed"
	case err != nil:
		log.Fatalf("broker unreachable: %v", err) // wraps context.DeadlineExceeded and the last attempt's error
	}
}

// Mutual TLS against a private CA; the URL's host must be a name in the
// broker's certificate (or set ServerName).
func ExampleWithTLS() {
	pem, err := os.ReadFile("ca.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair("client.pem", "client.key")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := lavinmq.New("amqps://orders:secret@rabbit.internal:5671/",
		lavinmq.WithTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		fmt.Println(err) // e.g. an amqp:// URL with WithTLS
		return
	}
	defer c.Close()
}
