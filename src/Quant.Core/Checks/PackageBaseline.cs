using NuGet.Common;
using NuGet.Configuration;
using NuGet.Packaging;
using NuGet.Packaging.Core;
using NuGet.Packaging.Signing;
using NuGet.Protocol;
using NuGet.Protocol.Core.Types;
using NuGet.Versioning;
using Quant.Core.Diagnostics;

namespace Quant.Core.Checks;

/// <summary>
/// <c>package:ID</c> (the newest version) or <c>package:ID@VERSION</c>: a baseline taken from a model package that
/// was already shipped (packed with <c>&lt;QuantModel Pack="true"&gt;</c>, which puts <c>NAME.check.json</c> in it).
/// </summary>
public sealed record PackageBaselineSpec(string Id, NuGetVersion? Version)
{
    public const string Prefix = "package:";

    public static bool Is(string? text) => text is not null && text.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>QB5005 at <paramref name="at"/> when the id or version is not a valid NuGet one.</summary>
    public static PackageBaselineSpec Parse(string text, SourcePosition at)
    {
        if (!Is(text))
            throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
                $"baseline '{text}' is not a package spec: write package:ID for the newest version or package:ID@VERSION for one version");
        var body = text[Prefix.Length..].Trim();
        int sep = body.IndexOf('@');
        var id = (sep < 0 ? body : body[..sep]).Trim();
        var versionText = sep < 0 ? null : body[(sep + 1)..].Trim();
        if (!PackageIdValidator.IsValidPackageId(id))
            throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
                $"baseline '{text}' does not name a package: write package:ID for the newest version or package:ID@VERSION for one version");
        NuGetVersion? version = null;
        if (versionText is not null && !NuGetVersion.TryParse(versionText, out version))
            throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
                $"baseline '{text}': '{versionText}' is not a package version (e.g. package:{id}@1.2.0; leave '@VERSION' out for the newest)");
        return new PackageBaselineSpec(id, version);
    }

    public override string ToString() => Prefix + Id + (Version is null ? "" : "@" + Version.ToNormalizedString());
}

/// <summary>The exact package a baseline spec resolved to, and the model's check report inside it.</summary>
public sealed record ResolvedPackageBaseline(string Id, NuGetVersion Version, string CheckJsonPath)
{
    /// <summary>The exact spec (<c>package:ID@VERSION</c>): what a build records and passes to the check.</summary>
    public string Spec => $"{PackageBaselineSpec.Prefix}{Id}@{Version.ToNormalizedString()}";
}

/// <summary>
/// Resolves a <see cref="PackageBaselineSpec"/> the way a restore would: the package sources and the global packages
/// folder of the nuget.config files that apply to a folder (the project's), credentials stored there included. An
/// exact version already in the global packages folder is used without touching any source (works offline); the
/// newest version is always asked of every source. Every failure — unknown package or version, a source that cannot
/// be reached, no report for this model inside, a time-out — is one QB5005 naming the package, the sources and the fix.
/// </summary>
public static class PackageBaseline
{
    /// <summary>The folder a package puts model NAME's files in (<c>docs/msbuild.md</c>, "Packing models").</summary>
    public static string ModelFolder(string name) => $"contentFiles/any/any/models/{name}/";

    /// <summary>Upper bound for the whole resolution (metadata and download); NuGet's own retries stay inside it.</summary>
    public static TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("QUANT_PACKAGE_TIMEOUT"), out var s) && s > 0 ? s : 100);

    public static ResolvedPackageBaseline Resolve(PackageBaselineSpec spec, string modelName, string settingsDirectory, SourcePosition at,
        CancellationToken cancel = default)
    {
        ISettings settings;
        string globalFolder;
        List<PackageSource> sources;
        try
        {
            settings = Settings.LoadDefaultSettings(settingsDirectory);
            globalFolder = SettingsUtility.GetGlobalPackagesFolder(settings);
            sources = new PackageSourceProvider(settings).LoadPackageSources().Where(s => s.IsEnabled).ToList();
        }
        catch (NuGetConfigurationException e)
        {
            throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
                $"baseline {spec}: cannot read the NuGet configuration (nuget.config) that applies to '{settingsDirectory}': {e.Message}", e);
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(Timeout);
        var names = sources.Count == 0 ? "no package source (nuget.config)" : string.Join(", ", sources.Select(s => $"{s.Name} ({s.Source})"));
        try
        {
            var version = spec.Version is { } exact && Installed(spec.Id, exact, globalFolder)
                ? exact
                : FetchAsync(spec, settings, sources, names, globalFolder, at, timeout.Token).GetAwaiter().GetResult();
            return new ResolvedPackageBaseline(spec.Id, version, FindReport(spec.Id, version, globalFolder, modelName, at));
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
                $"baseline {spec}: the package sources did not answer within {Timeout.TotalSeconds:0} s ({names}); check the network or the sources in nuget.config, " +
                "or pin package:ID@VERSION once it is in the global packages folder to build offline");
        }
    }

    private static bool Installed(string id, NuGetVersion version, string globalFolder)
    {
        using var found = GlobalPackagesFolderUtility.GetPackage(new PackageIdentity(id, version), globalFolder);
        return found is not null;
    }

    /// <summary>Finds the version (the given one, or the newest: stable first, else prerelease) and puts it in the global packages folder.</summary>
    private static async Task<NuGetVersion> FetchAsync(PackageBaselineSpec spec, ISettings settings, List<PackageSource> sources, string names,
        string globalFolder, SourcePosition at, CancellationToken cancel)
    {
        QuantException Fail(string why) => new(ErrorCode.CheckBaselineUnreadable, at, $"baseline {spec}: {why}");
        if (sources.Count == 0)
            throw Fail("no package source is configured; add the feed the package is published to under <packageSources> in nuget.config");

        var logger = new ProblemLogger();
        using var cache = new SourceCacheContext { NoCache = true };
        var listed = new List<(PackageSource Source, FindPackageByIdResource Finder, NuGetVersion Version)>();
        var unreachable = new List<string>();
        foreach (var source in sources)
        {
            cancel.ThrowIfCancellationRequested();
            if (source.IsLocal && !Directory.Exists(source.Source))
            {
                unreachable.Add($"{source.Name}: the folder {source.Source} does not exist");
                continue;
            }
            try
            {
                var finder = await Repository.Factory.GetCoreV3(source).GetResourceAsync<FindPackageByIdResource>(cancel);
                if (finder is null)
                {
                    unreachable.Add($"{source.Name}: not a package feed NuGet can list ({source.Source})");
                    continue;
                }
                foreach (var v in await finder.GetAllVersionsAsync(spec.Id, cache, logger, cancel) ?? []) listed.Add((source, finder, v));
            }
            catch (Exception e) when (e is FatalProtocolException or IOException or UnauthorizedAccessException or HttpRequestException or InvalidOperationException)
            {
                unreachable.Add($"{source.Name}: {Innermost(e)}");
            }
        }
        var problems = unreachable.Count == 0 ? "" : $" (could not read {string.Join("; ", unreachable)})";
        if (spec.Version is null && unreachable.Count > 0)
            throw Fail($"cannot tell the newest version: {string.Join("; ", unreachable)}; fix the source in nuget.config, or pin package:{spec.Id}@VERSION");
        if (listed.Count == 0)
            throw Fail($"no package '{spec.Id}' in {names}{problems}; check the id, or add the feed that has it to nuget.config");

        NuGetVersion version;
        if (spec.Version is { } wanted)
        {
            if (!listed.Any(l => l.Version == wanted))
                throw Fail($"package '{spec.Id}' has no version {wanted.ToNormalizedString()} in {names}{problems}; available: " +
                           $"{string.Join(", ", listed.Select(l => l.Version).Distinct().Order().Select(v => v.ToNormalizedString()))}");
            version = wanted;
        }
        else
        {
            var all = listed.Select(l => l.Version).ToList();
            version = all.Where(v => !v.IsPrerelease).DefaultIfEmpty().Max() ?? all.Max()!;
        }
        if (Installed(spec.Id, version, globalFolder)) return version;

        var from = listed.First(l => l.Version == version);
        var identity = new PackageIdentity(spec.Id, version);
        var temp = Path.Combine(Path.GetTempPath(), $"quant-baseline-{Guid.NewGuid():N}.nupkg");
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                if (!await from.Finder.CopyNupkgToStreamAsync(spec.Id, version, file, cache, logger, cancel))
                    throw Fail($"{from.Source.Name} ({from.Source.Source}) listed {version.ToNormalizedString()} but did not deliver it{logger.Text}");
                file.Position = 0;
                using var added = await GlobalPackagesFolderUtility.AddPackageAsync(from.Source.Source, identity, file, globalFolder, Guid.Empty,
                    ClientPolicyContext.GetClientPolicy(settings, logger), logger, cancel);
                if (added.Status != DownloadResourceResultStatus.Available)
                    throw Fail($"could not extract it into the global packages folder {globalFolder}{logger.Text}");
            }
        }
        catch (Exception e) when (e is FatalProtocolException or IOException or UnauthorizedAccessException or HttpRequestException or InvalidDataException)
        {
            throw Fail($"downloading {version.ToNormalizedString()} from {from.Source.Name} ({from.Source.Source}) failed: {Innermost(e)}");
        }
        finally { File.Delete(temp); }
        return version;
    }

    /// <summary>The model's NAME.check.json in the extracted package: in the documented folder, else the only one of that name.</summary>
    private static string FindReport(string id, NuGetVersion version, string globalFolder, string modelName, SourcePosition at)
    {
        var root = new VersionFolderPathResolver(globalFolder).GetInstallPath(id, version);
        var file = modelName + ".check.json";
        var reports = Directory.Exists(root)
            ? Directory.EnumerateFiles(root, "*.check.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList()
            : [];
        var documented = Path.GetFullPath(Path.Combine(root, ModelFolder(modelName), file));
        var mine = reports.Where(r => string.Equals(Path.GetFileName(r), file, StringComparison.OrdinalIgnoreCase)).ToList();
        if (mine.FirstOrDefault(r => string.Equals(Path.GetFullPath(r), documented, StringComparison.OrdinalIgnoreCase)) is { } exact) return exact;
        if (mine.Count == 1) return mine[0];
        var others = reports.Select(r => Path.GetRelativePath(root, r).Replace('\\', '/')).ToList();
        throw new QuantException(ErrorCode.CheckBaselineUnreadable, at,
            $"baseline {PackageBaselineSpec.Prefix}{id}@{version.ToNormalizedString()}: the package has " +
            (mine.Count > 1 ? $"several {file} ({string.Join(", ", others)})" : others.Count == 0 ? "no check report (*.check.json)" : $"no {file}, only {string.Join(", ", others)}") +
            $"; pack model '{modelName}' with <QuantModel ... Pack=\"true\"> and its checks (it is looked up by OutputName at {ModelFolder(modelName)}{file})");
    }

    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }

    /// <summary>Keeps NuGet's warnings and errors for the message; everything else is noise in a build log.</summary>
    private sealed class ProblemLogger : LoggerBase
    {
        private readonly List<string> _problems = [];

        public string Text
        {
            get { lock (_problems) return _problems.Count == 0 ? "" : ": " + string.Join("; ", _problems.Distinct()); }
        }

        public override void Log(ILogMessage message)
        {
            if (message.Level >= LogLevel.Warning) lock (_problems) _problems.Add(message.Message);
        }

        public override Task LogAsync(ILogMessage message)
        {
            Log(message);
            return Task.CompletedTask;
        }
    }
}
