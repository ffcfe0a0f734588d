// esbuild entry for graphiql/graphiql.js (IIFE). Built by ../fetch.sh.
// Exposes everything init.js needs on one global; contains no init logic.
import React from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';

globalThis.AmtsplatzGraphiQL = { React, createRoot, GraphiQL, createGraphiQLFetcher };
