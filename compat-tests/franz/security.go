package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// security is how a command reaches a secured listener: TLS when tls is
// given, SASL when sasl is; both for SASL_SSL.
type security struct {
	TLS  *tlsSettings  `json:"tls"`
	SASL *saslSettings `json:"sasl"`
}

// tlsSettings are PEM files: the CA that signed the broker's certificate and,
// for mutual TLS, the client's certificate and key.
type tlsSettings struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

type saslSettings struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (with User and
	// Password), or "OAUTHBEARER" (with Token, a JWT).
	Mechanism string `json:"mechanism"`
	User      string `json:"user"`
	Password  string `json:"password"`
	Token     string `json:"token"`
}

func (s security) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS != nil {
		config, err := s.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(config))
	}
	if s.SASL != nil {
		mechanism, err := s.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(mechanism))
	}
	return opts, nil
}

func (t tlsSettings) config() (*tls.Config, error) {
	ca, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("tls ca: no PEM certificate in %s", t.CA)
	}
	// kgo sets ServerName from the address dialed (127.0.0.1, in the dev CA's names).
	config := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

func (s saslSettings) mechanism() (sasl.Mechanism, error) {
	scramAuth := scram.Auth{User: s.User, Pass: s.Password}
	switch s.Mechanism {
	case "PLAIN":
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scramAuth.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scramAuth.AsSha512Mechanism(), nil
	case "OAUTHBEARER":
		return oauth.Auth{Token: s.Token}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("unknown sasl mechanism %q", s.Mechanism)
}
