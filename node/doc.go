// Package node is Hearth's peer library: the content model (CIDs, UnixFS
// DAGs, CAR), block stores, root records and the traversal that both serves
// and verifies the IPFS Trustless Gateway block stream; and pins with the
// garbage collection they govern (PutPin, CollectGarbage), shared by every
// role that writes to a store.
//
// Everything here builds for native targets and for GOOS=js GOARCH=wasm;
// native-only parts (pebble, the importer) live in sub-packages.
//
// Content model (see DESIGN.md): CIDv1, multihash BLAKE3-256 (0x1e, 32-byte
// digest), raw leaves (0x55) and dag-pb (0x70) UnixFS interior nodes, as
// `ipfs add -r --cid-version=1 --raw-leaves --hash=blake3` produces.
package node
