// Package testbrowser holds Hearth's end-to-end tests in headless Chromium
// (Debian's chromium, driven by chromedp): the service worker and the page
// agent loading a site through the swarm, verified, with the origin as
// fallback.
//
// The tests run inside a network namespace that has only loopback: TestMain
// builds the wasm assets, then re-executes the test binary under
// `unshare --net` and brings lo up, so that servers, seeders and Chromium
// all live there and nothing leaves the host (DESIGN.md, "Facts about
// dependencies"). Where unshare is not permitted or Chromium is missing,
// the tests skip and say why.
//
//	go test ./testbrowser/            # all browser tests
//	go test -run TestSW ./testbrowser/
package testbrowser
