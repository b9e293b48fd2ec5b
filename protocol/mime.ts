/**
 * MIME multipart/related codec for OSCI 1.2 (osci-protocol.md §4, §11): streaming parser and writer.
 * Implementation split by direction: mime-parse.ts, mime-write.ts, shared header syntax in mime-headers.ts.
 */
export {
  DEFAULT_MIME_LIMITS,
  multipartWritable,
  parseMultipart,
  parseMultipartBuffer,
  type MimeLimits,
  type ParseMultipartOptions,
  type ParsedMultipart,
  type ParsedPart,
  type PartHeaders,
  type PartSink,
} from './mime-parse.ts';
export {
  binaryPartHeaders,
  formatContentId,
  multipartContentType,
  newBoundary,
  soapPartHeaders,
  writeMultipart,
  writeMultipartBuffer,
  type MultipartPartInput,
  type WriteMultipartOptions,
  type WrittenMultipart,
} from './mime-write.ts';
export { isValidBoundary, parseContentType, type ContentType, type HeaderField } from './mime-headers.ts';
