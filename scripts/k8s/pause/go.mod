module backproof.test/pause

go 1.26.0
