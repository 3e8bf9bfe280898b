// Package checkquery parses the query of a configured check for a MongoDB
// target: one read-only database command as an Extended JSON document,
//
//	{"count": "orders", "query": {"status": "paid"}}
//	{"aggregate": "orders", "pipeline": [{"$match": {}}, {"$count": "n"}]}
//	{"find": "orders", "sort": {"created_at": -1}, "limit": 1, "projection": {"_id": 0, "created_at": 1}}
//
// optionally with "$db" naming the database (needed when a backup holds
// several). It is its own package so config validation and the engine
// parse queries the same way.
package checkquery

import (
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Commands a check may run: they only read.
var Commands = []string{"count", "aggregate", "find"}

// Query is a parsed check query.
type Query struct {
	Command    string // count, aggregate or find
	Collection string
	DB         string // "$db"; empty: the backup's only database
	Doc        bson.D // the command document to run, without "$db"
}

// Parse parses and checks a check query.
func Parse(query string) (*Query, error) {
	var doc bson.D
	if err := bson.UnmarshalExtJSON([]byte(query), false, &doc); err != nil {
		return nil, fmt.Errorf("not an Extended JSON command document such as {\"count\": \"orders\"}: %v", err)
	}
	if len(doc) == 0 {
		return nil, errors.New("empty command document; want e.g. {\"count\": \"orders\"}")
	}
	q := &Query{Command: doc[0].Key}
	known := false
	for _, c := range Commands {
		known = known || c == q.Command
	}
	if !known {
		return nil, fmt.Errorf("command %q is not allowed in a check (want %s)", q.Command, strings.Join(Commands, ", "))
	}
	coll, ok := doc[0].Value.(string)
	if !ok || coll == "" {
		return nil, fmt.Errorf("%s: want a collection name, e.g. {%q: \"orders\"}", q.Command, q.Command)
	}
	q.Collection = coll
	for _, e := range doc {
		switch e.Key {
		case "$db":
			db, ok := e.Value.(string)
			if !ok || db == "" {
				return nil, errors.New("$db: want a database name")
			}
			q.DB = db
			continue
		case "pipeline":
			if q.Command == "aggregate" {
				if err := checkPipeline(e.Value); err != nil {
					return nil, err
				}
			}
		}
		q.Doc = append(q.Doc, e)
	}
	if q.Command == "aggregate" {
		if !has(q.Doc, "pipeline") {
			return nil, errors.New("aggregate: a pipeline is required")
		}
		if !has(q.Doc, "cursor") { // the server requires it; {} takes its defaults
			q.Doc = append(q.Doc, bson.E{Key: "cursor", Value: bson.D{}})
		}
	}
	return q, nil
}

// checkPipeline refuses stages that write: a check must not change the
// copy the next check sees.
func checkPipeline(v any) error {
	stages, ok := v.(bson.A)
	if !ok {
		return errors.New("aggregate: pipeline must be an array of stages")
	}
	for i, s := range stages {
		stage, ok := s.(bson.D)
		if !ok || len(stage) != 1 {
			return fmt.Errorf("aggregate: pipeline stage %d must be a document with one field", i)
		}
		if k := stage[0].Key; k == "$out" || k == "$merge" {
			return fmt.Errorf("aggregate: stage %s writes; checks only read", k)
		}
	}
	return nil
}

func has(d bson.D, key string) bool {
	for _, e := range d {
		if e.Key == key {
			return true
		}
	}
	return false
}
