// PII scrubbing transform: e-mail addresses, phone numbers and IP addresses are replaced by tokens.
// Patterns are conservative (a phone number needs separators and 10-15 digits, or a leading + or area code in
// brackets) so years, dates and version numbers survive. It rewrites text; it never drops a document.
import type { Document, DocumentTransform } from './document.js';

export interface PiiConfig {
  email: boolean;
  phone: boolean;
  ip: boolean;
  emailToken: string;
  phoneToken: string;
  ipToken: string;
}

export const DEFAULT_PII: PiiConfig = {
  email: true,
  phone: true,
  ip: true,
  emailToken: '<EMAIL>',
  phoneToken: '<PHONE>',
  ipToken: '<IP_ADDRESS>',
};

const EMAIL_RE = /(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])/g;
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g');
// Full or ::-compressed IPv6 with at least three groups (so times like 12:30 are not touched).
const IPV6_RE = /(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,6}|[0-9A-Fa-f]{1,4})(?![\w:])/g;
const PHONE_RE = /(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,5}){1,3}(?![\w-]|\.\d)/g;

function isPhone(match: string): boolean {
  const digits = match.replace(/\D/g, '').length;
  if (digits < 7 || digits > 15) return false;
  const anchored = match.startsWith('+') || match.includes('(');
  // Without a + or an area code in brackets, ask for three or more groups and at least 10 digits (US/EU style).
  if (anchored) return digits >= 8;
  return digits >= 10 && match.split(/[\s.-]/).length >= 3;
}

export class PiiScrubber implements DocumentTransform {
  readonly name = 'pii';
  readonly counts = { email: 0, phone: 0, ip: 0 };
  constructor(private readonly c: PiiConfig = DEFAULT_PII) {}

  scrub(text: string): string {
    let t = text;
    if (this.c.email) {
      t = t.replace(EMAIL_RE, () => {
        this.counts.email++;
        return this.c.emailToken;
      });
    }
    if (this.c.ip) {
      const rep = (): string => {
        this.counts.ip++;
        return this.c.ipToken;
      };
      t = t.replace(IPV4_RE, rep).replace(IPV6_RE, (m) => (m.split(':').filter((g) => g !== '').length >= 3 || m.includes('::') ? rep() : m));
    }
    if (this.c.phone) {
      t = t.replace(PHONE_RE, (m) => {
        if (!isPhone(m)) return m;
        this.counts.phone++;
        return this.c.phoneToken;
      });
    }
    return t;
  }

  apply(doc: Document): Document {
    const text = this.scrub(doc.text);
    return text === doc.text ? doc : { ...doc, text };
  }
}
