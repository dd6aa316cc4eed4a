//! A container's file system: the pod's volumes at their mount paths and its working
//! directory, made with bubblewrap (a fresh root holding the host's top-level directories,
//! the volumes bound over them), since containers here are processes of this machine.
//!
//! Volumes: `emptyDir` (a directory of the pod), `hostPath`, and CSI volumes — inline, or
//! through a claim bound to a persistent volume — which become directories under the CSI
//! root, `<root>/<driver>/<bucket>/<prefix>`, scoped to the prefix the mount options name
//! (`only-dir=` for Cloud Storage FUSE, `prefix ` for Mountpoint for S3, `--subdirectory=` for
//! Azure Blob): what the session sees is that prefix of that bucket, as on a cluster.
//!
//! Every process of a container carries [`MARKER`] in its environment, so that the container's
//! end kills all of them ([`kill_marked`]), however they detached — as its cgroup would.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::StandInState;
use crate::store::str_at;

/// The variable naming the container every process belongs to.
pub(crate) const MARKER: &str = "ONMEMOS_STANDIN_CONTAINER";

/// The program that runs `argv` in a container's file system: empty when the container
/// mounts nothing and names no working directory (it runs in the pod's directory).
pub(crate) fn prefix(
    state: &StandInState,
    pod: &Value,
    container: &Value,
    pod_dir: &Path,
) -> Result<Vec<String>, String> {
    let mounts: Vec<&Value> = container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    let workdir = str_at(container, "/workingDir");
    if mounts.is_empty() && workdir.is_empty() {
        return Ok(Vec::new());
    }
    let bwrap = which("bwrap").ok_or_else(|| {
        "the stand-in's kubelet mounts volumes with bubblewrap (bwrap), which is not on the PATH"
            .to_owned()
    })?;
    let mut binds: Vec<(String, PathBuf, bool)> = Vec::new();
    for mount in mounts {
        let name = str_at(mount, "/name");
        let volume = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .and_then(|v| v.iter().find(|v| str_at(v, "/name") == name))
            .ok_or_else(|| format!("volume {name:?} is mounted but not declared"))?;
        let mut source = source(state, pod, volume, pod_dir)?;
        let sub = str_at(mount, "/subPath");
        if !sub.is_empty() {
            if sub.split('/').any(|p| p == "..") {
                return Err(format!("subPath {sub:?} leaves its volume"));
            }
            source = source.join(sub);
            std::fs::create_dir_all(&source).map_err(|e| format!("subPath {sub:?}: {e}"))?;
        }
        let read_only = mount
            .get("readOnly")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        binds.push((str_at(mount, "/mountPath").to_owned(), source, read_only));
    }
    // Outer mounts first, so that `/workspace/files` lands inside `/workspace`.
    binds.sort_by_key(|(path, _, _)| path.matches('/').count());
    let mut argv = vec![bwrap.display().to_string()];
    for entry in std::fs::read_dir("/")
        .map_err(|e| format!("read /: {e}"))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "proc" | "dev") {
            continue;
        }
        let path = format!("/{name}");
        match std::fs::read_link(&path) {
            Ok(target) => argv.extend(["--symlink".into(), target.display().to_string(), path]),
            Err(_) if entry.path().is_dir() => argv.extend(["--bind".into(), path.clone(), path]),
            Err(_) => {}
        }
    }
    argv.extend(["--dev-bind", "/dev", "/dev", "--bind", "/proc", "/proc"].map(str::to_owned));
    for (path, source, read_only) in binds {
        let flag = if read_only { "--ro-bind" } else { "--bind" };
        argv.extend([flag.to_owned(), source.display().to_string(), path]);
    }
    let chdir = if workdir.is_empty() {
        pod_dir.display().to_string()
    } else {
        workdir.to_owned()
    };
    argv.extend(["--chdir".to_owned(), chdir, "--".to_owned()]);
    Ok(argv)
}

/// The directory on this machine behind a volume.
fn source(
    state: &StandInState,
    pod: &Value,
    volume: &Value,
    pod_dir: &Path,
) -> Result<PathBuf, String> {
    let name = str_at(volume, "/name");
    let dir = if volume.get("emptyDir").is_some() {
        let dir = pod_dir.join("volumes").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("emptyDir {name}: {e}"))?;
        // As on a node: anyone in the pod may write it.
        let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777));
        dir
    } else if let Some(host) = volume.get("hostPath") {
        let path = PathBuf::from(str_at(host, "/path"));
        match str_at(host, "/type") {
            "DirectoryOrCreate" => std::fs::create_dir_all(&path)
                .map_err(|e| format!("hostPath {}: {e}", path.display()))?,
            "Directory" if !path.is_dir() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    path.display()
                ));
            }
            _ => {}
        }
        path
    } else if let Some(csi) = volume.get("csi") {
        csi_dir(
            state,
            str_at(csi, "/driver"),
            csi.get("volumeAttributes"),
            &[],
        )?
    } else if let Some(claim) = volume.get("persistentVolumeClaim") {
        let namespace = str_at(pod, "/metadata/namespace");
        claimed(state, namespace, str_at(claim, "/claimName"))?
    } else {
        return Err(format!(
            "volume {name:?} is of a kind the stand-in does not mount (emptyDir, hostPath, csi and persistentVolumeClaim are)"
        ));
    };
    Ok(dir)
}

/// The directory of the persistent volume a claim is bound to.
fn claimed(state: &StandInState, namespace: &str, claim: &str) -> Result<PathBuf, String> {
    let find =
        |plural| crate::resources::find("", "v1", plural).ok_or("no such resource".to_owned());
    let pvc = state
        .store
        .get(find("persistentvolumeclaims")?, namespace, claim)
        .map_err(|_| format!("persistentvolumeclaim {claim:?} not found"))?;
    let volume = str_at(&pvc, "/spec/volumeName");
    let pv = state
        .store
        .get(find("persistentvolumes")?, "", volume)
        .map_err(|_| {
            format!("claim {claim:?} is bound to no persistentvolume (volumeName {volume:?})")
        })?;
    let options: Vec<String> = pv
        .pointer("/spec/mountOptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str().map(str::to_owned))
        .collect();
    let csi = pv
        .pointer("/spec/csi")
        .ok_or_else(|| format!("persistentvolume {volume:?} is not a CSI volume"))?;
    csi_dir(
        state,
        str_at(csi, "/driver"),
        csi.get("volumeAttributes"),
        &options,
    )
}

/// `<root>/<driver>/<bucket>/<prefix>` for a CSI volume of a bucket driver.
fn csi_dir(
    state: &StandInState,
    driver: &str,
    attributes: Option<&Value>,
    pv_options: &[String],
) -> Result<PathBuf, String> {
    let attr = |key: &str| {
        attributes
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (bucket, prefix) = match driver {
        "gcsfuse.csi.storage.gke.io" => {
            let prefix = attr("mountOptions")
                .split(',')
                .find_map(|o| o.trim().strip_prefix("only-dir="))
                .unwrap_or_default()
                .to_owned();
            (attr("bucketName").to_owned(), prefix)
        }
        "s3.csi.aws.com" => {
            let prefix = pv_options
                .iter()
                .find_map(|o| {
                    o.strip_prefix("prefix ")
                        .or_else(|| o.strip_prefix("prefix="))
                })
                .unwrap_or_default()
                .to_owned();
            (attr("bucketName").to_owned(), prefix)
        }
        "blob.csi.azure.com" => {
            let prefix = attr("mountOptions")
                .split_whitespace()
                .find_map(|o| o.strip_prefix("--subdirectory="))
                .unwrap_or_default()
                .to_owned();
            (attr("containerName").to_owned(), prefix)
        }
        other => {
            return Err(format!(
                "CSI driver {other:?} is not one the stand-in knows (gcsfuse.csi.storage.gke.io, s3.csi.aws.com, blob.csi.azure.com)"
            ));
        }
    };
    let safe = |s: &str| !s.split('/').any(|p| p == "..");
    if bucket.is_empty() || !safe(&bucket) || !safe(&prefix) {
        return Err(format!(
            "CSI volume of {driver}: bucket {bucket:?} or prefix {prefix:?} is not valid"
        ));
    }
    let dir = state
        .kubelet
        .csi_root()
        .join(driver)
        .join(bucket)
        .join(prefix.trim_matches('/'));
    std::fs::create_dir_all(&dir).map_err(|e| format!("CSI volume {}: {e}", dir.display()))?;
    Ok(dir)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Kills every process of this machine whose environment holds `MARKER=value`, again until
/// none is left (one may fork while the others die).
pub(crate) fn kill_marked(value: &str) {
    let needle = format!("{MARKER}={value}\0").into_bytes();
    for _ in 0..20 {
        let mut found = false;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
                && let Some(pid) = rustix::process::Pid::from_raw(pid)
            {
                found = true;
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
