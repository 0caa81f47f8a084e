package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
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
			roots, n, err := node.ImportCAR(cmd.Context(), st, f, 0)
			if err != nil {
				return fmt.Errorf("importing %s (%d blocks stored): %w", args[0], n, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "imported %d blocks\n", n)
			for _, r := range roots {
				// A root whose DAG is whole is pinned (kept by garbage
				// collection); a partial one is left unpinned.
				_, err := node.PinWhole(cmd.Context(), st, r)
				switch {
				case errors.Is(err, node.ErrNotFound):
					fmt.Fprintf(cmd.ErrOrStderr(), "root %s is not whole here; not pinned\n", r)
				case err != nil:
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			return nil
		},
	})
	return cmd
}
