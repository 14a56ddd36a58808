//go:build race

package vault_test

func init() { raceEnabled = true }
