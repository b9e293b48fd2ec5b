/** OSCI 1.2 namespaces and SOAP actors (osci-protocol.md §3, §4; [J] osci12/common/Constants.java). */

export const SOAP_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
export const OSCI_NS = 'http://www.osci.de/2002/04/osci';
export const DS_NS = 'http://www.w3.org/2000/09/xmldsig#';
export const XENC_NS = 'http://www.w3.org/2001/04/xmlenc#';
export const XENC11_NS = 'http://www.w3.org/2009/xmlenc11#';
/** Chunking and FeatureDescription (EFFI.xsd). */
export const OSCI2017_NS = 'http://xoev.de/transport/osci12/7';
/** IvLength (order_zusatz.xsd). */
export const OSCI128_NS = 'http://xoev.de/transport/osci12/8';
export const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
export const XML_NS = 'http://www.w3.org/XML/1998/namespace';
export const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

/** soap:actor of every default header block (order.xsd DefaultHeaderBlockTemplate, fixed). */
export const ACTOR_NEXT = 'http://schemas.xmlsoap.org/soap/actor/next';
/** soap:actor of the two *Certificates blocks (order.xsd *CertificatesTemplate, fixed). */
export const ACTOR_NONE = 'http://www.w3.org/2001/12/soap-envelope/actor/none';

/** Prefixes the reference library declares on the Envelope and again on every header block ([C] messages). */
export const PREFIXES = Object.freeze({
  ds: DS_NS,
  osci: OSCI_NS,
  osci2017: OSCI2017_NS,
  soap: SOAP_NS,
  xenc: XENC_NS,
  xsi: XSI_NS,
});
