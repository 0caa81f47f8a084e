// Package testbrowser holds Hearth's end-to-end tests in headless Chromium
// (Debian's chromium, driven by chromedp): the service worker and the page
// agent loading a site through the swarm, verified, with the origin as
// fallback.
//
// The tests run inside a network namespace of their own: TestMain builds
// the wasm assets, then re-executes the test binary under `unshare --net`,
// brings lo up and adds a veth pair whose two ends both stay in the
// namespace (10.77.0.1/24, 10.77.0.2/24, default route through it: Chromium
// gathers ICE candidates only on the default route's interface, which two
// browsers need to reach each other). Servers, seeders and Chromium all
// live there and nothing leaves the host (DESIGN.md, "Facts about
// dependencies"). Where unshare is not permitted or Chromium is missing,
// the tests skip and say why; without veth, only the browser-to-browser
// tests skip.
//
// The acceptance suite (issue 7) is TestAcceptancePythonDocs and
// TestAcceptancePeers, on Debian's python3-doc, TestAcceptanceRustDoc on
// rust-doc (a site of 500 MB, directories of 5,000 files) and
// TestAcceptanceImageSite; the doc sites are a table (docsite_test.go)
// with one set of checks. Each doc-site test also logs its page loads
// through the swarm against the origin's (PAGELOAD site cold … warm …);
// BenchmarkPageLoad reports the same per site, and BenchmarkSeederToPage
// measures seeder → page transfers.
//
//	go test -timeout 25m ./testbrowser/   # all browser tests (make test-browser)
//	go test -run TestAcceptance ./testbrowser/
//	go test -run '^$' -bench . -benchtime 3x ./testbrowser/   # make bench-browser
package testbrowser
