//go:build tools

// Package tools pins the Kubo that narfs's tests use as the reference IPFS node;
// ../kubo.sh builds it.
//
// Kubo v0.43.1's own go.mod replaces go-libp2p with a fork (github.com/lidel/go-libp2p)
// that the Go module proxy does not serve, so `go install …/cmd/ipfs@v0.43.1` fails.
// Built from this module instead, upstream go-libp2p v0.49.0 is used, and quic-go and
// webtransport-go are held (go.mod's replace lines) at the versions that go-libp2p
// v0.49.0 was released with (Kubo had bumped them for the fork). Only the QUIC and
// WebTransport transports change; the UnixFS importer (boxo) is Kubo's own.
package tools

import _ "github.com/ipfs/kubo/cmd/ipfs"
