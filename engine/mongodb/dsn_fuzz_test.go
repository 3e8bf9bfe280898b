package mongodb

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzURI: the password the driver sends is one the redactor masks, and
// connect's error for an invalid URI quotes none.
func FuzzURI(f *testing.F) {
	enginetest.FuzzDSN(f, Kind, []string{
		"mongodb://app:pw@db:27017/shop?authSource=admin", "mongodb+srv://app:p%40ss@cluster.example.com/shop",
		"mongodb://u:p&<>\"x@h", "mongodb://u:pZ9%%x@h/", "mongodb://h1,h2/?replicaSet=rs0", "mongodb://u:a+b@h/?tls=maybe",
	}, func(uri string) (string, string, error) {
		o := options.Client().ApplyURI(uri)
		if err := o.Validate(); err != nil {
			return "", "", errors.New(redactURI(err.Error(), uri))
		}
		hosts, db, _ := splitURI(uri)
		if o.Auth == nil {
			return "", hosts + "/" + db, nil
		}
		return o.Auth.Password, hosts + "/" + db, nil
	})
}
