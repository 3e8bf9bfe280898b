package mongodb

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzURI: the password the driver sends is one the redactor masks, and
// connect's error for an invalid URI quotes none.
func FuzzURI(f *testing.F) {
	for _, s := range []string{
		"mongodb://app:pw@db:27017/shop?authSource=admin", "mongodb+srv://app:p%40ss@cluster.example.com/shop",
		"mongodb://u:p&<>\"x@h", "mongodb://u:pZ9%%x@h/", "mongodb://h1,h2/?replicaSet=rs0", "mongodb://u:a+b@h/?tls=maybe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		o := options.Client().ApplyURI(uri)
		if err := o.Validate(); err != nil {
			enginetest.QuotesNoPassword(t, Kind, uri, redactURI(err.Error(), uri))
			return
		}
		if o.Auth != nil {
			enginetest.KnownPassword(t, Kind, uri, o.Auth.Password)
		}
		splitURI(uri)
	})
}
