/* radsal reading-room renderer: the image at full depth, windowed in real units (HU for CT),
   and a saliency map field coloured with the study's colormap — in WebGL2, or on a 2-D
   canvas where WebGL2 is unavailable. Both paths compute the same pixels with the same
   formulas as the server (ml/data/dicom.py's LINEAR window, ml/explain/render.py's overlay):

     grey  = clamp((v - (c - 0.5)) / (w - 1) + 0.5, 0, 1)      (inverted: 1 - grey), to 1/255
     level = the field sampled bilinearly at the pixel, rounded to an integer 0..255
     alpha = opacity * level / 255 if level >= threshold else 0
     out   = grey * (1 - alpha) + lut[level] * alpha

   No dependencies, no build step; exposes window.RadViewer. */
(() => {
  "use strict";

  /* ------------------------------------------------------------------ .npy payloads */
  const DTYPES = {
    "|u1": Uint8Array,
    "<u1": Uint8Array,
    "<i2": Int16Array,
    "<u2": Uint16Array,
    "<f4": Float32Array,
    "<i4": Int32Array,
  };

  /** Parse a NumPy .npy (version 1/2, C order) into {data, shape, dtype}. */
  function parseNpy(buffer) {
    const bytes = new Uint8Array(buffer);
    if (bytes[0] !== 0x93 || String.fromCharCode(...bytes.slice(1, 6)) !== "NUMPY") {
      throw new Error("not a .npy payload");
    }
    const major = bytes[6];
    const view = new DataView(buffer);
    const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
    const start = major === 1 ? 10 : 12;
    const header = new TextDecoder().decode(bytes.slice(start, start + headerLen));
    const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
    const fortran = /'fortran_order':\s*True/.test(header);
    const shape = /'shape':\s*\(([^)]*)\)/
      .exec(header)[1]
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map(Number);
    const Type = DTYPES[descr];
    if (!Type || fortran) throw new Error("unsupported .npy dtype " + descr);
    const offset = start + headerLen;
    const count = shape.reduce((a, b) => a * b, 1);
    const data = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
    return { data, shape, dtype: descr };
  }

  /** Robust window (centre, width) over the 0.5–99.5 percentiles of the values. */
  function autoWindow(values) {
    const n = values.length;
    if (!n) return { center: 0.5, width: 1 };
    const step = Math.max(1, Math.floor(n / 65536)); // a sample is plenty for percentiles
    const sample = [];
    for (let i = 0; i < n; i += step) sample.push(values[i]);
    sample.sort((a, b) => a - b);
    const at = (q) => sample[Math.min(sample.length - 1, Math.round(q * (sample.length - 1)))];
    let lo = at(0.005);
    let hi = at(0.995);
    if (hi <= lo) {
      lo = sample[0];
      hi = sample[sample.length - 1];
    }
    return { center: (lo + hi) / 2, width: Math.max(hi - lo, 1) };
  }

  /** The LINEAR window as an 8-bit grey level (what the server's display pipeline uses). */
  function windowLevel(v, center, width, invert) {
    const w = Math.max(width, 1);
    let g = w > 1 ? (v - (center - 0.5)) / (w - 1) + 0.5 : v >= center ? 1 : 0;
    g = Math.min(1, Math.max(0, g));
    if (invert) g = 1 - g;
    return Math.round(g * 255);
  }

  function lutBytes(name) {
    const table = (window.RADSAL_COLORMAPS || {})[name];
    if (!table) throw new Error("unknown colormap " + name);
    return Uint8Array.from(table);
  }

  /* ------------------------------------------------------------------ WebGL2 path */
  const VS = `#version 300 es
  in vec2 pos;
  uniform vec4 view;   // image-space rectangle shown: x0, y0, x1, y1 (in image pixels)
  uniform vec2 size;   // image width, height
  out vec2 uv;         // image coordinates normalised to [0, 1]
  void main() {
    vec2 t = pos * 0.5 + 0.5;
    vec2 px = mix(view.xy, view.zw, vec2(t.x, 1.0 - t.y));
    uv = px / size;
    gl_Position = vec4(pos, 0.0, 1.0);
  }`;

  const FS = `#version 300 es
  precision highp float;
  in vec2 uv;
  uniform highp sampler2D image;  // R32F values in real units, NEAREST
  uniform sampler2D field;        // R8 levels / 255, LINEAR
  uniform sampler2D lut;          // 256×1 RGBA8, NEAREST
  uniform float center, width, invertGrey, opacity, threshold, showMap;
  out vec4 colour;
  void main() {
    if (uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0) { colour = vec4(0.0, 0.0, 0.0, 1.0); return; }
    float v = texture(image, uv).r;
    float w = max(width, 1.0);
    float g = w > 1.0 ? (v - (center - 0.5)) / (w - 1.0) + 0.5 : (v >= center ? 1.0 : 0.0);
    g = clamp(g, 0.0, 1.0);
    if (invertGrey > 0.5) g = 1.0 - g;
    g = floor(g * 255.0 + 0.5) / 255.0;
    float level = floor(texture(field, uv).r * 255.0 + 0.5);
    vec3 c = texture(lut, vec2((level + 0.5) / 256.0, 0.5)).rgb;
    float a = (showMap > 0.5 && level >= threshold) ? opacity * level / 255.0 : 0.0;
    colour = vec4(vec3(g) * (1.0 - a) + c * a, 1.0);
  }`;

  function compile(gl, type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }

  function glRenderer(canvas) {
    const gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false });
    if (!gl) return null;
    const prog = gl.createProgram();
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    gl.useProgram(prog);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, "pos");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    const u = (name) => gl.getUniformLocation(prog, name);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);

    function texture(unit, filter) {
      const t = gl.createTexture();
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, filter);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, filter);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      return t;
    }
    const tex = { image: texture(0, gl.NEAREST), field: texture(1, gl.LINEAR), lut: texture(2, gl.NEAREST) };
    gl.uniform1i(u("image"), 0);
    gl.uniform1i(u("field"), 1);
    gl.uniform1i(u("lut"), 2);
    const loaded = { image: null, field: null, lut: null };

    return {
      kind: "webgl2",
      setImage(img) {
        if (loaded.image === img) return;
        const f = img.data instanceof Float32Array ? img.data : Float32Array.from(img.data);
        gl.activeTexture(gl.TEXTURE0);
        gl.bindTexture(gl.TEXTURE_2D, tex.image);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32F, img.width, img.height, 0, gl.RED, gl.FLOAT, f);
        loaded.image = img;
      },
      setField(field) {
        if (loaded.field === field) return;
        gl.activeTexture(gl.TEXTURE1);
        gl.bindTexture(gl.TEXTURE_2D, tex.field);
        const n = field ? field.size : 1;
        const data = field ? field.data : new Uint8Array(1);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8, n, n, 0, gl.RED, gl.UNSIGNED_BYTE, data);
        loaded.field = field;
      },
      setColormap(name) {
        if (loaded.lut === name) return;
        const rgb = lutBytes(name);
        const rgba = new Uint8Array(256 * 4);
        for (let i = 0; i < 256; i++) {
          rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
          rgba[i * 4 + 3] = 255;
        }
        gl.activeTexture(gl.TEXTURE2);
        gl.bindTexture(gl.TEXTURE_2D, tex.lut);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
        loaded.lut = name;
      },
      draw(s) {
        gl.viewport(0, 0, canvas.width, canvas.height);
        gl.uniform4f(u("view"), s.view[0], s.view[1], s.view[2], s.view[3]);
        gl.uniform2f(u("size"), s.image.width, s.image.height);
        gl.uniform1f(u("center"), s.center);
        gl.uniform1f(u("width"), s.width);
        gl.uniform1f(u("invertGrey"), s.invert ? 1 : 0);
        gl.uniform1f(u("opacity"), s.opacity);
        gl.uniform1f(u("threshold"), s.threshold);
        gl.uniform1f(u("showMap"), s.field ? 1 : 0);
        gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      },
    };
  }

  /* ------------------------------------------------------------------ canvas-2D path */
  function canvasRenderer(canvas) {
    const ctx = canvas.getContext("2d");
    const work = document.createElement("canvas");
    const wctx = work.getContext("2d");
    let image = null;
    let field = null;
    let lut = null;
    let lutName = null;
    let key = "";
    let fieldLevels = null; // the field resampled (bilinear, rounded) at image pixel centres

    function resampleField() {
      const w = image.width;
      const h = image.height;
      const n = field.size;
      const out = new Uint8Array(w * h);
      for (let y = 0; y < h; y++) {
        const fy = Math.min(n - 1, Math.max(0, ((y + 0.5) / h) * n - 0.5));
        const y0 = Math.floor(fy);
        const y1 = Math.min(n - 1, y0 + 1);
        const ty = fy - y0;
        for (let x = 0; x < w; x++) {
          const fx = Math.min(n - 1, Math.max(0, ((x + 0.5) / w) * n - 0.5));
          const x0 = Math.floor(fx);
          const x1 = Math.min(n - 1, x0 + 1);
          const tx = fx - x0;
          const d = field.data;
          const top = d[y0 * n + x0] * (1 - tx) + d[y0 * n + x1] * tx;
          const bot = d[y1 * n + x0] * (1 - tx) + d[y1 * n + x1] * tx;
          out[y * w + x] = Math.round(top * (1 - ty) + bot * ty);
        }
      }
      return out;
    }

    return {
      kind: "canvas2d",
      setImage(img) {
        if (image !== img) {
          image = img;
          fieldLevels = null;
          key = "";
        }
      },
      setField(f) {
        if (field !== f) {
          field = f;
          fieldLevels = null;
          key = "";
        }
      },
      setColormap(name) {
        if (lutName !== name) {
          lut = lutBytes(name);
          lutName = name;
          key = "";
        }
      },
      draw(s) {
        const w = image.width;
        const h = image.height;
        const k = [s.center, s.width, s.invert, s.opacity, s.threshold, !!field].join(",");
        if (k !== key) {
          if (field && !fieldLevels) fieldLevels = resampleField();
          if (work.width !== w || work.height !== h) {
            work.width = w;
            work.height = h;
          }
          const px = wctx.createImageData(w, h);
          const out = px.data;
          const v = image.data;
          for (let i = 0; i < w * h; i++) {
            const g = windowLevel(v[i], s.center, s.width, s.invert);
            let r = g;
            let gg = g;
            let b = g;
            if (fieldLevels) {
              const level = fieldLevels[i];
              if (level >= s.threshold && level > 0) {
                const a = (s.opacity * level) / 255;
                r = g * (1 - a) + lut[level * 3] * a;
                gg = g * (1 - a) + lut[level * 3 + 1] * a;
                b = g * (1 - a) + lut[level * 3 + 2] * a;
              }
            }
            const o = i * 4;
            out[o] = Math.round(r);
            out[o + 1] = Math.round(gg);
            out[o + 2] = Math.round(b);
            out[o + 3] = 255;
          }
          wctx.putImageData(px, 0, 0);
          key = k;
        }
        ctx.imageSmoothingEnabled = false;
        ctx.fillStyle = "#000";
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        const [x0, y0, x1, y1] = s.view;
        const sx = canvas.width / (x1 - x0);
        const sy = canvas.height / (y1 - y0);
        ctx.setTransform(sx, 0, 0, sy, -x0 * sx, -y0 * sy);
        ctx.drawImage(work, 0, 0);
        ctx.setTransform(1, 0, 0, 1, 0, 0);
      },
    };
  }

  /**
   * A renderer on `canvas`: WebGL2 unless `prefer` is "canvas2d", WebGL2 is unavailable, or
   * (`prefer` "no-software-gl") it would run in software.
   * Use: r.setImage({data, width, height}); r.setField({data: Uint8Array, size} | null);
   * r.setColormap(name); r.draw({image, view: [x0, y0, x1, y1], center, width, invert,
   * opacity, threshold, field}).
   */
  let software = null; // is WebGL2 emulated on the CPU (SwiftShader, llvmpipe)?
  function softwareGL() {
    if (software === null) {
      const gl = document.createElement("canvas").getContext("webgl2");
      const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
      const name = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
      software = !gl || /swiftshader|llvmpipe|software/i.test(name);
      const lose = gl && gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    }
    return software;
  }

  function createRenderer(canvas, prefer) {
    // "no-software-gl": the 2-D path where WebGL2 would be emulated on the CPU (measured slower
    // than emulated WebGL2 for three 512-px viewports, so not the page's default).
    if (prefer !== "canvas2d" && !(prefer === "no-software-gl" && softwareGL())) {
      try {
        const r = glRenderer(canvas);
        if (r) return r;
      } catch (err) {
        console.warn("radsal viewer: WebGL2 unavailable, using canvas 2-D", err);
      }
    }
    return canvasRenderer(canvas);
  }

  /** Threshold level for "show the top k %" of a field's non-zero levels. */
  function topKLevel(field, percent) {
    if (percent >= 100) return 0;
    const hist = new Uint32Array(256);
    for (const v of field.data) hist[v]++;
    const want = (field.data.length * percent) / 100;
    let seen = 0;
    for (let level = 255; level > 0; level--) {
      seen += hist[level];
      if (seen >= want) return level;
    }
    return 1;
  }

  /** Fetch a trial file as an ArrayBuffer (credentials included: trial URLs are private). */
  async function fetchBuffer(url) {
    const res = await fetch(url, { credentials: "same-origin" });
    if (!res.ok) throw new Error(url + ": HTTP " + res.status);
    return res.arrayBuffer();
  }

  /** Decode an 8-bit display PNG into grey values (its red channel) for the same pipeline. */
  async function pngValues(buffer) {
    const bitmap = await createImageBitmap(new Blob([buffer], { type: "image/png" }));
    const c = document.createElement("canvas");
    c.width = bitmap.width;
    c.height = bitmap.height;
    const x = c.getContext("2d");
    x.drawImage(bitmap, 0, 0);
    const rgba = x.getImageData(0, 0, c.width, c.height).data;
    const data = new Uint8Array(c.width * c.height);
    for (let i = 0; i < data.length; i++) data[i] = rgba[i * 4];
    return { data, width: c.width, height: c.height };
  }

  /** Load a viewer spec's image: .npy source in real units, or the 8-bit display PNG. */
  async function loadImage(spec) {
    const buffer = await fetchBuffer(spec.url);
    if (spec.format === "npy") {
      const npy = parseNpy(buffer);
      return { data: npy.data, width: npy.shape[1], height: npy.shape[0] };
    }
    return pngValues(buffer);
  }

  async function loadField(url) {
    const npy = parseNpy(await fetchBuffer(url));
    return { data: npy.data, size: npy.shape[0] };
  }

  window.RadViewer = {
    autoWindow,
    createRenderer,
    loadField,
    loadImage,
    parseNpy,
    topKLevel,
    windowLevel,
  };
})();
