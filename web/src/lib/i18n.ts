/**
 * Chinese by default, English on demand: `?lang=en` in the address, or the page's switch (remembered in
 * localStorage and written back into the address, so a reload keeps it).
 */
export type Lang = 'zh' | 'en';

const STORE = 'hotline.lang';

export function initialLang(): Lang {
  const q = new URLSearchParams(location.search).get('lang');
  if (q === 'en' || q === 'zh') return q;
  try {
    const saved = localStorage.getItem(STORE);
    if (saved === 'en' || saved === 'zh') return saved;
  } catch {
    /* storage blocked: the default */
  }
  return 'zh';
}

export interface I18n<K extends string> {
  readonly lang: Lang;
  t(key: K, params?: Record<string, string | number>): string;
  set(lang: Lang): void;
  /** called after every switch (the page re-renders) */
  onChange(fn: () => void): void;
}

/** dictionaries: every key in both languages; `{name}` placeholders filled by t(key, {name}) */
export function createI18n<K extends string>(text: Record<Lang, Record<K, string>>): I18n<K> {
  let lang = initialLang();
  const listeners: Array<() => void> = [];
  const applyStatic = () => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
      const v = text[lang][el.dataset.i18n as K];
      if (v !== undefined) el.textContent = v;
    }
    for (const el of document.querySelectorAll<HTMLElement>('[data-i18n-placeholder]')) {
      const v = text[lang][el.dataset.i18nPlaceholder as K];
      if (v !== undefined) el.setAttribute('placeholder', v);
    }
  };
  applyStatic();
  return {
    get lang() {
      return lang;
    },
    t(key, params) {
      let v: string = text[lang][key] ?? key;
      if (params) for (const [k, p] of Object.entries(params)) v = v.replaceAll(`{${k}}`, String(p));
      return v;
    },
    set(next) {
      lang = next;
      try {
        localStorage.setItem(STORE, next);
      } catch {
        /* not remembered */
      }
      const url = new URL(location.href);
      url.searchParams.set('lang', next);
      history.replaceState(null, '', url);
      applyStatic();
      for (const fn of listeners) fn();
    },
    onChange(fn) {
      listeners.push(fn);
    },
  };
}

/** agent states as the floor says them */
export const STATE_TEXT: Record<Lang, Record<string, string>> = {
  zh: { ready: '空闲', on_call: '通话中', reserved: '振铃', wrap_up: '话后处理', not_ready: '示忙', on_break: '休息', outbound: '外呼', logged_out: '未签入' },
  en: { ready: 'Ready', on_call: 'On call', reserved: 'Ringing', wrap_up: 'Wrap-up', not_ready: 'Not ready', on_break: 'On break', outbound: 'Outbound', logged_out: 'Signed out' },
};

/** the order states are shown in */
export const STATES = ['ready', 'on_call', 'reserved', 'wrap_up', 'not_ready', 'on_break', 'outbound', 'logged_out'] as const;
