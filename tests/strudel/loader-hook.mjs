// Node resolves @kabelsalat/web (a dependency of @strudel/core 1.2.6) through
// its "main", an IIFE build with no ES exports; its ES module build is
// "module".  This hook resolves the package to that build.
import { register } from 'node:module';

register('./resolve-kabelsalat.mjs', import.meta.url);
