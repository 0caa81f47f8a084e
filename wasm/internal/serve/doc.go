// Package serve is the service worker's core, free of syscall/js so that it
// is tested natively: it answers a GET or HEAD for a path under a verified
// root from a block cache and from untrusted block sources, and streams the
// file's bytes as they are verified.
//
// # How a request is served
//
// Serve resolves the path over a session Getter that reads, in order:
//
//  1. blocks the session already holds;
//  2. the Cache (every block read from it is verified again, and a corrupt
//     one deleted);
//  3. a fetch from the current Source: one Trustless Gateway request
//     (node.Request, dag-scope=entity with the byte range wanted) whose
//     block stream runs through node.Traverse over node.NewStreamSource, so
//     every block is checked against its CID and against the traversal's
//     order before anything reads it. Verified blocks go to the Cache.
//
// When a source fails (an error, a bad block, a block out of order, a
// stream that ends early) the operation in progress is retried with the
// next source, starting from the first byte not yet written: blocks already
// verified are reused, not fetched again. When every source has failed
// before the response's headers were produced, Serve returns an error
// wrapping ErrPassThrough and the caller fetches the plain URL from the
// network. A failure after the body started makes Body return the error:
// the caller errors the stream, so a truncated body is never mistaken for
// a complete one.
//
// Responses follow the origin's gateway.Site: index.html for a directory
// path ending in "/", 301 to add the slash otherwise, Content-Type from the
// extension (mime's builtin table) else sniffed from the first 512 bytes
// exactly as http.DetectContentType, ETag the file's CID, a single-range
// Range answered with 206 (416 when unsatisfiable, multi-range ignored), If-Range
// and If-None-Match on the ETag.
package serve
