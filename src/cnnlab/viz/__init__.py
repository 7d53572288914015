"""Pictures of a run: plots (curves, confusion matrix), Grad-CAM, feature maps, filters, and the HTML report.

    from cnnlab.viz.gradcam import grad_cam           # grad_cam(model, x, class_index=None, layer=None)
    from cnnlab.viz.features import feature_maps      # one FeatureStage per conv stage
    from cnnlab.viz.filters import filter_grid, first_conv_weight
    from cnnlab.viz.report import build_report        # build_report(run_dir, out=None) -> Path

Modules are imported on use (nothing here), so `cnnlab.viz.plots` stays cheap for `cnnlab evaluate`.
"""
