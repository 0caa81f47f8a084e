package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
)

// errVerifyFailed makes `hearth verify` exit non-zero after its report.
var errVerifyFailed = errors.New("verification failed")

func newVerifyCmd() *cobra.Command {
	var storeDir string
	cmd := &cobra.Command{
		Use:   "verify [--store DIR] CID",
		Short: "Walk a DAG in the store; report missing or corrupt blocks (non-zero exit if any)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, st, err := openStoreFor(storeDir, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := verifyDAG(cmd.Context(), st, root, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d blocks checked, %d missing, %d corrupt\n", rep.blocks, rep.missing, rep.corrupt)
			if rep.missing+rep.corrupt > 0 {
				return errVerifyFailed
			}
			return nil
		},
	}
	addStoreFlag(cmd, &storeDir)
	return cmd
}

type verifyReport struct{ blocks, missing, corrupt int }

// verifyDAG walks every block reachable from root, going on past missing or
// corrupt blocks, and prints one line for each problem.
func verifyDAG(ctx context.Context, g node.Getter, root cid.Cid, w io.Writer) (verifyReport, error) {
	var rep verifyReport
	n, err := node.CheckDAG(ctx, g, root, func(p node.Problem) bool {
		if errors.Is(p.Err, node.ErrNotFound) {
			rep.missing++
			fmt.Fprintf(w, "missing %s\n", p.Cid)
		} else {
			rep.corrupt++
			fmt.Fprintf(w, "corrupt %s: %v\n", p.Cid, p.Err)
		}
		return true
	})
	rep.blocks = n
	return rep, err
}
