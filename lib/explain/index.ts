export { explain, type Explanation, type ExplainOptions, type LiveState } from './explain';
export { formatExplanation } from './format';
export { fromCurl, fromRaw, fromJson, toJson, responseFromRaw, ExplainInputError, type ExplainRequest, type CurlLike } from './request';
export { explainRemote, RemoteExplainError } from './remote';
export { registerExplainEndpoint } from './admin';
export type { ExplainResponse } from './cache';
