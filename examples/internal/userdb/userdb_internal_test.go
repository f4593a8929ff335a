package userdb

import (
	"os"
	"testing"
)

func TestTemporaryDatabaseIsRemoved(t *testing.T) {
	s, err := Open(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.tempDir
	if err := s.Setup(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "SQLite (temporary file)" {
		t.Errorf("String() = %q", got)
	}
	if _, err := s.User(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("temporary directory %s: %v", dir, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s still there after Close (Stat error %v)", dir, err)
	}
}
