// Package harness runs Hearth nodes as child processes for tests: it
// builds the hearth binary once per test binary, starts origins and
// seeders on OS-chosen loopback ports, each in its own temporary
// directory, waits for them by polling with bounded deadlines, kills
// (SIGKILL) and restarts them, and reads their metrics. It also builds
// DAG fixtures in memory, a CA and server certificate for TLS tests
// (NewTestCA), and nginx running the README's server block in front of a
// node (StartNginx).
//
// Processes write their bound address to a file (--addr-file); nothing
// guesses ports. Every wait is bounded in time; a child still running when
// its test ends is killed. On failure the tail of each child's log is
// printed. Linux only.
package harness
