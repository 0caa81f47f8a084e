package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "0": 0, "512": 512, "512B": 512, "4K": 4096, "4KiB": 4096, "4KB": 4000,
		"16MiB": 16 << 20, "2GiB": 2 << 30, "2gb": 2e9, "1.5G": 3 << 29, "1T": 1 << 40,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "G", "12XB", "1e3", "9999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
