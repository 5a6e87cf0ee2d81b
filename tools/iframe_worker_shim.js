// A stand-in for the iframe-worker shim that mkdocs-material's offline plugin loads from unpkg.com (this site must work
// without other hosts). Browsers refuse Web Workers from file:// pages, so the search worker runs in a hidden same-origin
// iframe instead: the page's postMessage reaches the worker's message listeners, and the worker's postMessage reaches
// the page's. Served pages (http://) keep the native Worker.
(function () {
  if (location.protocol !== 'file:') return;
  class IframeWorker extends EventTarget {
    constructor(url) {
      super();
      this.onmessage = null; this.onerror = null; this._queue = []; this._ready = false;
      const frame = document.createElement('iframe');
      frame.hidden = true; frame.setAttribute('aria-hidden', 'true');
      (document.body || document.documentElement).appendChild(frame);
      const w = this._w = frame.contentWindow, page = this;
      w.postMessage = (data) => setTimeout(() => page._emit(new MessageEvent('message', { data })));
      w.importScripts = () => { throw new Error('importScripts is not available in the file:// search worker'); };
      const s = w.document.createElement('script');
      s.src = new URL(url, location.href).href;
      s.onload = () => { page._ready = true; page._queue.splice(0).forEach((d) => page._deliver(d)); };
      s.onerror = () => page._emit(new ErrorEvent('error', { message: 'search worker failed to load: ' + url }));
      w.document.head.appendChild(s);
    }
    _emit(e) { const h = e.type === 'error' ? this.onerror : this.onmessage; if (h) h.call(this, e); this.dispatchEvent(e); }
    _deliver(data) {
      const e = new this._w.MessageEvent('message', { data });
      if (this._w.onmessage) this._w.onmessage(e);
      this._w.dispatchEvent(e);
    }
    postMessage(data) { if (this._ready) setTimeout(() => this._deliver(data)); else this._queue.push(data); }
    terminate() { this._ready = false; }
  }
  window.Worker = IframeWorker;
})();
