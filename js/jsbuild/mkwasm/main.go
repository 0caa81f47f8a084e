// Command mkwasm builds the browser client's wasm assets and prints their
// sizes; `make wasm` runs it:
//
//	go run ./js/jsbuild/mkwasm [-out js/dist] [-only sw,agent] [-check] [-names] [-keep-raw]
//
// -check exits with status 1 when a binary is over its brotli budget.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/hearthcdn/hearth/js/jsbuild"
)

func main() {
	out := flag.String("out", "js/dist", "output directory")
	only := flag.String("only", "", "comma-separated targets (sw, agent); empty for all")
	check := flag.Bool("check", false, "fail when a binary is over its brotli budget")
	names := flag.Bool("names", false, "keep function names (for profiling)")
	keepRaw := flag.Bool("keep-raw", false, "keep the uncompressed .wasm files (not embedded by default)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var targets []string
	if *only != "" {
		targets = strings.Split(*only, ",")
	}
	arts, err := jsbuild.Build(ctx, jsbuild.Options{Out: *out, Only: targets, KeepNames: *names, DropRaw: !*keepRaw})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkwasm:", err)
		os.Exit(1)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "file\traw\tgzip\tbrotli\tbudget (brotli)\t")
	over := false
	for _, a := range arts {
		budget := "-"
		if a.Budget > 0 {
			budget = mb(a.Budget)
			if a.Brotli > a.Budget {
				budget += " OVER"
				over = true
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", a.Name, mb(a.Raw), mb(a.Gzip), mb(a.Brotli), budget)
	}
	tw.Flush()
	if over && *check {
		os.Exit(1)
	}
}

func mb(n int64) string { return fmt.Sprintf("%.3f MB", float64(n)/1e6) }
