package docker

import "github.com/backproof/backproof/sandbox"

// SeedKey is the key of the seed spec starts from on the image imageID.
func SeedKey(imageID string, spec sandbox.Spec) string { return seedKey(imageID, spec) }
