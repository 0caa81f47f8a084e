// Package repo holds tests about the repository as a whole: every package
// has a doc comment, every Go file is gofmt-clean, and the hearth binary
// does not link the testing package.
package repo
