"""Evaluate: the COCO bbox metrics of the torch detector and of each
deployed file on the config's test set, through mmengine's Runner (torch)
and mmdeploy's task processor (its data pipeline, rescaling and evaluator):
onnxruntime with mmdeploy's own backend model, any other backend's session
in that model's place."""
import os
import shutil
from typing import Dict, List

from mmengine.config import Config

from ..metrics import complete_metrics


def evaluate_torch(cfg_path: str, checkpoint: str, work_dir: str) -> Dict:
    """COCO metrics of a (stock) detector on its config's test set, with
    mmengine's Runner."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.pop('visualizer', None)
    return Runner.from_cfg(cfg).test()


def evaluate_onnx(cfg_path: str, deploy_cfg: Config, onnx_path: str,
                  work_dir: str, session=None) -> Dict:
    """COCO metrics of an end-to-end ONNX file on the test set, through
    mmdeploy's task processor: its onnxruntime backend model, or with
    ``session`` (any backend's) in that model's place
    (:func:`session_wrapper`)."""
    from mmdeploy.apis import build_task_processor
    model_cfg = Config.fromfile(cfg_path)
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    model = processor.build_backend_model(
        [onnx_path], processor.update_data_preprocessor)
    if session is not None:
        model.wrapper = session_wrapper(session)
    runner = processor.build_test_runner(model, work_dir)
    return runner.test()


def bbox_metrics(metrics: Dict, evaluator) -> Dict[str, float]:
    """The ``coco/bbox_*`` metrics of an evaluation under their short names;
    mAP 0 for a model that detected nothing (mmdet's CocoMetric returns no
    key at all then)."""
    metrics, _ = complete_metrics(metrics, evaluator)
    return {k.split('/')[-1]: float(v) for k, v in metrics.items()
            if k.startswith('coco/bbox')}


def evaluate_end2end(fused_cfg_path: str, fused_pth: str, deploy_cfg: Config,
                     onnx_files: Dict[str, str], work_dir: str) -> Dict:
    """bbox metrics of the torch detector (``'torch'``) and of each ONNX
    file (name -> path) on the test set, as ``{name: {'bbox_mAP': ...}}``.
    ``work_dir`` holds the runners' files and is removed afterwards. A
    model that detects nothing gets mAP 0 (mmdet's CocoMetric returns no
    key at all then)."""
    evaluator = Config.fromfile(fused_cfg_path).test_evaluator
    try:
        result = dict(torch=bbox_metrics(evaluate_torch(
            fused_cfg_path, fused_pth, os.path.join(work_dir, 'torch')),
            evaluator))
        for name, path in onnx_files.items():
            result[name] = bbox_metrics(evaluate_onnx(
                fused_cfg_path, deploy_cfg, path,
                os.path.join(work_dir, name)), evaluator)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


def session_wrapper(session):
    """An ``nn.Module`` with the call protocol of mmdeploy's backend
    wrappers (``wrapper({'input': x})`` -> name -> tensor,
    ``output_to_list``) over a session of any backend
    (``run(output_names, feeds)``)."""
    import torch

    class SessionWrapper(torch.nn.Module):

        def forward(self, inputs: Dict) -> Dict:
            x = inputs['input'].detach().cpu().numpy()
            dets, labels = session.run(['dets', 'labels'], {'input': x})
            return dict(dets=torch.from_numpy(dets),
                        labels=torch.from_numpy(labels))

        @staticmethod
        def output_to_list(outputs: Dict) -> List:
            return [outputs['dets'], outputs['labels']]

    return SessionWrapper()


def evaluate_sessions(cfg_path: str, deploy_cfg: Config, onnx_path: str,
                      sessions: Dict, work_dir: str) -> Dict:
    """bbox metrics of each session (any backend) on the config's test set,
    as ``{name: {'bbox_mAP': ...}}`` (:func:`evaluate_onnx` with the
    session). ``work_dir`` is removed afterwards.

    Args:
        cfg_path (str): the stock detector's config.
        deploy_cfg (Config): mmdeploy's deploy config of the export.
        onnx_path (str): ``end2end.onnx`` (mmdeploy builds its model around
            it; the session replaces the runtime).
        sessions (dict): name -> session.
        work_dir (str): the runners' scratch folder.
    """
    evaluator = Config.fromfile(cfg_path).test_evaluator
    try:
        return {name: bbox_metrics(evaluate_onnx(
            cfg_path, deploy_cfg, onnx_path, os.path.join(work_dir, name),
            session), evaluator) for name, session in sessions.items()}
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
