//go:build linux

package harness_test

import (
	"testing"

	"github.com/hearthcdn/hearth/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
