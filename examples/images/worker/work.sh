#!/bin/sh
echo "worker: processed $(echo a b c | wc -w) jobs"
