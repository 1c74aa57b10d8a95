// The resolve hook registered by loader-hook.mjs.
export async function resolve(specifier, context, next) {
  if (specifier === '@kabelsalat/web') {
    const main = await next(specifier, context);
    return { ...main, url: main.url.replace(/dist\/index\.js$/, 'dist/index.mjs') };
  }
  return next(specifier, context);
}
