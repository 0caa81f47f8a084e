//go:build !js

package node

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ErrBadKey: a key file does not hold an ed25519 private key.
var ErrBadKey = errors.New("not an ed25519 private key")

// WriteKeyFile writes key as a PKCS #8 PEM file (RFC 8410) with mode 0600.
// It refuses to overwrite an existing file.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("writing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing key: %w", err)
	}
	return f.Close()
}

// ReadKeyFile reads a key written by WriteKeyFile. Errors wrap ErrBadKey or
// the file system's error.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("reading key %s: no PEM PRIVATE KEY block: %w", path, ErrBadKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading key %s: %v: %w", path, err, ErrBadKey)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("reading key %s: %T: %w", path, k, ErrBadKey)
	}
	return ek, nil
}
