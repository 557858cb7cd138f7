#!/usr/bin/env node
// Reference outputs of a TF.js graph model, run by TF.js's own pure-JS CPU backend.
//
// Why: the PyTorch port of MoveNet (dense_warper_ros/backbones/movenet.py) is checked against the
// implementation its weights were published for. No native code, no network: the three npm packages
// (@tensorflow/tfjs-core, -converter, -backend-cpu) are installed by scripts/install_tfjs_reference.sh.
//
// Usage: node scripts/tfjs_reference.js JOB.json
// JOB.json: {"tfjs_dir": ".cache/tfjs", "model": ".../movenet-thunder.json",
//            "outputs": ["StatefulPartitionedCall/Sigmoid", "Identity", ...],
//            "inputs": [{"file": "in0.bin", "shape": [1, 256, 256, 3]}],   // int32 NHWC RGB
//            "out_dir": "..."}
// Writes out_dir/<input index>_<output index>.bin (float32, little endian) and out_dir/result.json
// listing each file with its node name and shape.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node tfjs_reference.js JOB.json');
    process.exit(2);
  }
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const req = createRequire(path.resolve(job.tfjs_dir, 'package.json'));
  const tf = req('@tensorflow/tfjs-core');
  req('@tensorflow/tfjs-backend-cpu');
  const tfconv = req('@tensorflow/tfjs-converter');
  await tf.setBackend('cpu');
  await tf.ready();

  // The model's own files: topology + weight shards, handed to TF.js from memory.
  const modelJson = JSON.parse(fs.readFileSync(job.model, 'utf8'));
  const dir = path.dirname(job.model);
  const specs = [];
  const buffers = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tfconv.loadGraphModel(tf.io.fromMemory({
    modelTopology: modelJson.modelTopology,
    weightSpecs: specs,
    weightData,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    signature: modelJson.signature,
  }));

  fs.mkdirSync(job.out_dir, { recursive: true });
  const result = { backend: tf.getBackend(), tfjs_version: tf.version_core, files: [] };
  job.inputs.forEach((inp, i) => {
    const raw = fs.readFileSync(inp.file);
    const data = new Int32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const x = tf.tensor(data, inp.shape, 'int32');
    const t0 = Date.now();
    let outs = model.execute(x, job.outputs);
    if (!Array.isArray(outs)) outs = [outs];
    const ms = Date.now() - t0;
    outs.forEach((t, k) => {
      const file = path.join(job.out_dir, `${i}_${k}.bin`);
      const v = t.dataSync();
      fs.writeFileSync(file, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      result.files.push({ input: i, node: job.outputs[k], shape: t.shape, dtype: t.dtype, file, ms });
      t.dispose();
    });
    x.dispose();
  });
  fs.writeFileSync(path.join(job.out_dir, 'result.json'), JSON.stringify(result, null, 1));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
