package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	cid "github.com/ipfs/go-cid"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

func newCarCmd() *cobra.Command {
	var storeDir string
	cmd := &cobra.Command{Use: "car", Short: "Export or import CARv1 files"}
	cmd.PersistentFlags().StringVar(&storeDir, "store", "", "block store directory (default $HEARTH_STORE, $XDG_DATA_HOME/hearth or ~/.local/share/hearth)")
	cmd.AddCommand(&cobra.Command{
		Use:   "export CID FILE",
		Short: "Write the DAG under CID to FILE as a CARv1, verifying every block",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, st, err := openStoreFor(storeDir, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			f, err := os.CreateTemp(".", ".hearth-car-*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			if err := node.ExportCAR(cmd.Context(), st, root, f); err != nil {
				f.Close()
				return fmt.Errorf("exporting %s: %w", root, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(f.Name(), args[1])
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE",
		Short: "Verify and store every block of a CAR file; pin and print its roots",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := importCAR(cmd.Context(), st, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("importing %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "imported %d blocks\n", n)
			return nil
		},
	})
	return cmd
}

// importCAR stores the blocks of the CAR r in st (node.ImportCAR) and pins
// each root whose DAG is whole, printing the roots to out and notes to
// errOut. It returns the number of blocks added. If the import or a pin
// fails (a corrupt or hostile block, a truncated CAR, a cancelled
// context), the blocks it added that no pin keeps are deleted again, so
// a failed import leaves the store as it was.
func importCAR(ctx context.Context, st *pebblestore.Store, r io.Reader, out, errOut io.Writer) (int, error) {
	imp, err := node.ImportCAR(ctx, st, r, 0)
	if err == nil {
		err = pinRoots(ctx, st, imp.Roots, out, errOut)
	}
	if err != nil {
		// The deletion runs even when ctx ended: it is what stopping
		// must leave behind.
		if _, derr := node.DiscardBlocks(context.WithoutCancel(ctx), st, imp.Added, nil); derr != nil {
			return 0, fmt.Errorf("%w (deleting the %d blocks it added: %v)", err, len(imp.Added), derr)
		}
		return 0, err
	}
	return len(imp.Added), nil
}

// pinRoots pins each root whose DAG is whole (kept by garbage collection);
// a partial one is left unpinned.
func pinRoots(ctx context.Context, st *pebblestore.Store, roots []cid.Cid, out, errOut io.Writer) error {
	for _, r := range roots {
		_, err := node.PinWhole(ctx, st, r)
		switch {
		case errors.Is(err, node.ErrNotFound):
			fmt.Fprintf(errOut, "root %s is not whole here; not pinned\n", r)
		case err != nil:
			return err
		}
		fmt.Fprintln(out, r)
	}
	return nil
}
