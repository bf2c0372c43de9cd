/** Response compression: the filter, and the negotiation helpers the cache uses too. */
export { CompressionComponent, CompressionFilter, compressionCounters } from './filter';
export { negotiate, isCompressible, decoderFor, parseAcceptEncoding, typeListFor, TypeList } from './negotiate';
export type { Coding, Choice } from './negotiate';
export { createEncoder, brotliQuality, gzipLevel } from './encoder';
export { mergeVary, weakenEtag, hasToken } from './headers';
